"""An SVG of one transformer block as the loaded family wires it, with RED's edit sites highlighted (no gradio)."""

from __future__ import annotations

import textwrap
import zlib
from dataclasses import dataclass
from html import escape

RED = "#c0392b"
INK = "#2c3e50"
MUTED = "#7f8c8d"
BOX_FILL = {"norm": "#ecf0f1", "block": "#eaf2f8", "site": "#fdfefe", "red": RED}
BOX_HEIGHT, GAP, RISE, ROW_HEIGHT = 58, 22, 130, 200  # RISE: from a box's top down to the residual stream
NORM_WIDTH = 70
MARKER = "MARKER_ID"  # replaced per drawing: several SVGs on one page need distinct marker ids
ACTIVATIONS = {"silu": "SiLU", "swish": "SiLU", "relu": "ReLU", "gelu": "GELU", "tanh": "tanh"}


@dataclass(frozen=True)
class BlockStyle:
    """How a family wires one block.

    Pre-norm (GPT-2, Llama): ``h ← h + Attn(Norm h)``, ``h ← h + FFN(Norm h)``.
    Post-norm (BERT, MiniLM): ``h ← Norm(h + Attn h)``, ``h ← Norm(h + FFN h)``.
    A gated FFN (Llama, Qwen2, Mistral, Gemma) computes ``down(act(gate x) ⊙ up x)``; a plain one ``down(act(up x))``.
    """

    norm: str = "pre"  # "pre" or "post"
    gated: bool = True
    activation: str = "act"
    up_module: str = "up"
    description: str = "pre-norm, gated FFN (Llama style)"

    @property
    def ffn_subtitle(self) -> str:
        return f"{self.activation}(gate) ⊙ up" if self.gated else f"{self.up_module} → {self.activation}"


FAMILIES = {  # scheme family (core/sites.py) -> (norm, gated, first FFN module, description)
    "llama": ("pre", True, "up", "pre-norm, gated FFN (Llama style)"),
    "gpt2": ("pre", False, "c_fc", "pre-norm, plain FFN (GPT-2 style)"),
    "bert": ("post", False, "intermediate", "post-norm: norm after each add, plain FFN (BERT style)"),
    "gpt-neox": ("pre", False, "dense_h_to_4h", "pre-norm, plain FFN (GPT-NeoX style)"),
    "opt": ("pre", False, "fc1", "pre-norm, plain FFN (OPT style)"),
    "phi": ("pre", False, "fc1", "pre-norm, plain FFN (Phi style)"),
}


def block_style(family: str, activation: str | None = None) -> BlockStyle:
    """The drawing style of a scheme family ('llama', 'gpt2', 'bert', ...), with its activation's name."""
    norm, gated, up, description = FAMILIES.get(family, FAMILIES["llama"])
    name = (activation or "").lower()
    pretty = next((label for key, label in ACTIVATIONS.items() if name.startswith(key)), activation or "act")
    return BlockStyle(norm, gated, pretty, up, description)


LLAMA = block_style("llama", "silu")


@dataclass(frozen=True)
class Box:
    title: str
    subtitle: str
    kind: str  # "norm", "block", "site" or "red"
    width: int
    edited: bool = False


def _box(x: float, y: float, box: Box, height: int = BOX_HEIGHT) -> str:
    fill = BOX_FILL[box.kind]
    stroke = RED if box.edited or box.kind == "red" else "#95a5a6"
    ink = "#ffffff" if box.kind == "red" else INK
    sub_ink = "#fdedec" if box.kind == "red" else MUTED
    middle = x + box.width / 2
    title_y = y + (25 if box.subtitle else height / 2 + 5)
    return (
        f'<rect x="{x}" y="{y}" width="{box.width}" height="{height}" rx="9" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="{3 if box.edited or box.kind == "red" else 1.5}"/>'
        f'<text x="{middle}" y="{title_y}" text-anchor="middle" font-size="15" font-weight="600" '
        f'fill="{ink}">{escape(box.title)}</text>'
        f'<text x="{middle}" y="{y + 44}" text-anchor="middle" font-size="11.5" fill="{sub_ink}">'
        f"{escape(box.subtitle)}</text>"
    )


def _arrow(x1: float, y1: float, x2: float, y2: float) -> str:
    ends = f'x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}"'
    return f'<line {ends} stroke="{INK}" stroke-width="2" marker-end="url(#{MARKER})"/>'


def _line(x1: float, y1: float, x2: float, y2: float, width: float = 2.5) -> str:
    return f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{INK}" stroke-width="{width}"/>'


def _plus(x: float, y: float) -> str:
    return (
        f'<circle cx="{x}" cy="{y}" r="13" fill="#ffffff" stroke="{INK}" stroke-width="2"/>'
        f'<text x="{x}" y="{y + 6}" text-anchor="middle" font-size="19" fill="{INK}">+</text>'
    )


def _branch(x: float, top: float, boxes: list[Box]) -> tuple[list[str], float]:
    """One residual branch: up from the stream at ``x``, through the boxes, down into a ⊕. Returns (parts, ⊕ x)."""
    box_y, stream_y = top, top + RISE
    middle_y = box_y + BOX_HEIGHT / 2
    parts = [
        f'<polyline points="{x},{stream_y} {x},{middle_y} {x + GAP - 4},{middle_y}" fill="none" '
        f'stroke="{INK}" stroke-width="2" marker-end="url(#{MARKER})"/>'
    ]
    cursor = x + GAP
    for index, box in enumerate(boxes):
        parts.append(_box(cursor, box_y, box))
        cursor += box.width
        if index < len(boxes) - 1:
            parts.append(_arrow(cursor, middle_y, cursor + GAP - 4, middle_y))
            cursor += GAP
    plus_x = cursor + 30
    parts.append(
        f'<polyline points="{cursor},{middle_y} {plus_x},{middle_y} {plus_x},{stream_y - 17}" '
        f'fill="none" stroke="{INK}" stroke-width="2" marker-end="url(#{MARKER})"/>'
    )
    parts.append(_plus(plus_x, stream_y))
    return parts, plus_x


def _sublayer(x: float, top: float, boxes: list[Box], style: BlockStyle) -> tuple[list[str], float, float]:
    """A branch and, for post-norm, the Norm on the stream after its ⊕.

    Returns (parts, x of the ⊕, x where the stream leaves the sublayer).
    """
    if style.norm == "pre":
        boxes = [Box("Norm", "", "norm", NORM_WIDTH), *boxes]
    parts, plus_x = _branch(x, top, boxes)
    leave = plus_x + 13
    if style.norm == "post":
        stream_y = top + RISE
        parts.append(_arrow(leave, stream_y, leave + GAP - 4, stream_y))
        parts.append(_box(leave + GAP, stream_y - 20, Box("Norm", "", "norm", NORM_WIDTH), height=40))
        leave += GAP + NORM_WIDTH
    return parts, plus_x, leave


def _attention_boxes(sites, attn_module: str) -> list[Box]:
    boxes = [Box("Self-attention", "q, k, v · softmax", "block", 150)]
    boxes.append(Box(attn_module.split(".")[-1], "attention output", "site", 130, edited="attn" in sites))
    return boxes + ([_red_box()] if "attn" in sites else [])


def _ffn_boxes(sites, ffn_module: str, style: BlockStyle) -> list[Box]:
    title = "gate, up" if style.gated else "FFN up"
    boxes = [Box(title, style.ffn_subtitle, "block", 140)]
    boxes.append(Box(ffn_module.split(".")[-1], "FFN down-projection", "site", 140, edited="ffn" in sites))
    return boxes + ([_red_box()] if "ffn" in sites else [])


def _red_box() -> Box:
    return Box("RED", "scale ⊙ h + bias", "red", 130, edited=True)


def _stream_label(x: float, y: float) -> str:
    return (
        f'<text x="{x}" y="{y + 34}" font-size="12" fill="{MUTED}">residual stream (frozen model: '
        "every grey box keeps its weights)</text>"
    )


def _wide(attention: list[Box], ffn: list[Box], style: BlockStyle) -> tuple[list[str], float, float]:
    """Both sublayers on one row. Returns (parts, width, height without caption)."""
    top, stream_y = 30, 30 + RISE
    first, plus_one, leave_one = _sublayer(70, top, attention, style)
    second, plus_two, leave_two = _sublayer(leave_one + 27, top, ffn, style)
    width = leave_two + 97
    stream = [
        f'<text x="12" y="{stream_y + 5}" font-size="14" fill="{INK}">h</text>',
        _line(30, stream_y, plus_one - 13, stream_y),
        _line(leave_one, stream_y, plus_two - 13, stream_y),
        _arrow(leave_two, stream_y, width - 40, stream_y),
        f'<text x="{width - 34}" y="{stream_y + 5}" font-size="13" fill="{MUTED}">next</text>',
        _stream_label(40, stream_y),
    ]
    return [*stream, *first, *second], width, stream_y + 50


def _stacked(attention: list[Box], ffn: list[Box], style: BlockStyle) -> tuple[list[str], float, float]:
    """One sublayer per row (for narrow screens); the stream wraps from the first row to the second."""
    first, plus_one, leave_one = _sublayer(34, 30, attention, style)
    second, plus_two, leave_two = _sublayer(34, 30 + ROW_HEIGHT, ffn, style)
    width = max(leave_one, leave_two) + 64
    y1, y2 = 30 + RISE, 30 + ROW_HEIGHT + RISE
    turn = y1 + 30
    stream = [
        f'<text x="6" y="{y1 + 5}" font-size="14" fill="{INK}">h</text>',
        _line(18, y1, plus_one - 13, y1),
        f'<polyline points="{leave_one},{y1} {width - 16},{y1} {width - 16},{turn} {16},{turn} {16},{y2} '
        f'{plus_two - 17},{y2}" fill="none" stroke="{INK}" stroke-width="2.5" '
        f'marker-end="url(#{MARKER})"/>',
        _arrow(leave_two, y2, width - 40, y2),
        f'<text x="{width - 34}" y="{y2 + 5}" font-size="13" fill="{MUTED}">next</text>',
        _stream_label(30, y2),
    ]
    return [*stream, *first, *second], width, y2 + 50


def block_svg(
    sites: tuple[str, ...] | list[str] = ("ffn",),
    ffn_module: str = "mlp.down_proj",
    attn_module: str = "self_attn.o_proj",
    caption: str = "",
    style: BlockStyle = LLAMA,
    layout: str = "wide",
) -> str:
    """One block as ``style`` wires it, with a RED box after each edited projection.

    ``layout``: "wide" (both sublayers on one row) or "stacked" (one per row, readable on narrow screens).
    """
    attention, ffn = _attention_boxes(sites, attn_module), _ffn_boxes(sites, ffn_module, style)
    parts, width, height = (_stacked if layout == "stacked" else _wide)(attention, ffn, style)
    lines = textwrap.wrap(caption, width=int(width / 7.2)) if caption else []
    for index, line in enumerate(lines):
        parts.append(f'<text x="12" y="{height + 4 + 19 * index}" font-size="13.5" fill="{INK}">{escape(line)}</text>')
    height += 19 * len(lines) + (6 if lines else -14)
    defs = (
        f'<defs><marker id="{MARKER}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{INK}"/></marker></defs>'
    )
    key = "|".join([*sorted(sites), ffn_module, attn_module, caption, str(style), layout])
    body = "".join([defs, *parts]).replace(MARKER, f"arrow-{zlib.crc32(key.encode()):08x}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" width="100%" '
        f'role="img" aria-label="transformer block with RED edits ({escape(style.description)})" '
        f'font-family="Inter, Liberation Sans, Arial, sans-serif">{body}</svg>'
    )


def responsive_svg(**options) -> str:
    """The wide drawing, and the stacked one for narrow screens (CSS classes ``red-wide`` and ``red-narrow``)."""
    wide = block_svg(**options, layout="wide")
    narrow = block_svg(**options, layout="stacked")
    return f'<div class="red-wide">{wide}</div><div class="red-narrow">{narrow}</div>'
