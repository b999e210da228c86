"""An SVG of one pre-norm transformer block with RED's edit sites highlighted (no gradio needed)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from html import escape

RED = "#c0392b"
INK = "#2c3e50"
MUTED = "#7f8c8d"
BOX_FILL = {"norm": "#ecf0f1", "block": "#eaf2f8", "site": "#fdfefe", "red": RED}
BOX_Y, BOX_HEIGHT, RESIDUAL_Y, GAP = 46, 58, 196, 22
MARKER = "MARKER_ID"  # replaced per drawing: several SVGs on one page need distinct marker ids


@dataclass(frozen=True)
class Box:
    title: str
    subtitle: str
    kind: str  # "norm", "block", "site" or "red"
    width: int
    edited: bool = False


def _box(x: int, box: Box) -> str:
    fill = BOX_FILL[box.kind]
    stroke = RED if box.edited or box.kind == "red" else "#95a5a6"
    ink = "#ffffff" if box.kind == "red" else INK
    sub_ink = "#fdedec" if box.kind == "red" else MUTED
    middle = x + box.width / 2
    return (
        f'<rect x="{x}" y="{BOX_Y}" width="{box.width}" height="{BOX_HEIGHT}" rx="9" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="{3 if box.edited or box.kind == "red" else 1.5}"/>'
        f'<text x="{middle}" y="{BOX_Y + (25 if box.subtitle else 34)}" text-anchor="middle" font-size="15" '
        f'font-weight="600" '
        f'fill="{ink}">{escape(box.title)}</text>'
        f'<text x="{middle}" y="{BOX_Y + 44}" text-anchor="middle" font-size="11.5" fill="{sub_ink}">'
        f"{escape(box.subtitle)}</text>"
    )


def _arrow(x1: float, y1: float, x2: float, y2: float, colour: str = INK) -> str:
    style = f'stroke="{colour}" stroke-width="2" marker-end="url(#{MARKER})"'
    return f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" {style}/>'


def _branch(x: int, boxes: list[Box]) -> tuple[list[str], int]:
    """One residual branch: up from the stream, through the boxes, down into a ⊕. Returns (parts, x of ⊕)."""
    middle_y = BOX_Y + BOX_HEIGHT / 2
    parts = [
        f'<polyline points="{x},{RESIDUAL_Y} {x},{middle_y} {x + GAP - 4},{middle_y}" fill="none" '
        f'stroke="{INK}" stroke-width="2" marker-end="url(#{MARKER})"/>'
    ]
    cursor = x + GAP
    for index, box in enumerate(boxes):
        parts.append(_box(cursor, box))
        cursor += box.width
        if index < len(boxes) - 1:
            parts.append(_arrow(cursor, middle_y, cursor + GAP - 4, middle_y))
            cursor += GAP
    plus_x = cursor + 30
    parts.append(
        f'<polyline points="{cursor},{middle_y} {plus_x},{middle_y} {plus_x},{RESIDUAL_Y - 17}" '
        f'fill="none" stroke="{INK}" stroke-width="2" marker-end="url(#{MARKER})"/>'
    )
    parts.append(
        f'<circle cx="{plus_x}" cy="{RESIDUAL_Y}" r="13" fill="#ffffff" stroke="{INK}" stroke-width="2"/>'
        f'<text x="{plus_x}" y="{RESIDUAL_Y + 6}" text-anchor="middle" font-size="19" fill="{INK}">+</text>'
    )
    return parts, plus_x


def _red_box() -> Box:
    return Box("RED", "scale ⊙ h + bias", "red", 130, edited=True)


def _stream(plus_one: float, plus_two: float, width: float) -> list[str]:
    """The residual stream: h in, through both ⊕, on to the next block."""
    return [
        f'<text x="12" y="{RESIDUAL_Y + 5}" font-size="14" fill="{INK}">h</text>',
        f'<line x1="30" y1="{RESIDUAL_Y}" x2="{plus_one - 13}" y2="{RESIDUAL_Y}" stroke="{INK}" stroke-width="2.5"/>',
        f'<line x1="{plus_one + 13}" y1="{RESIDUAL_Y}" x2="{plus_two - 13}" y2="{RESIDUAL_Y}" stroke="{INK}" '
        'stroke-width="2.5"/>',
        _arrow(plus_two + 13, RESIDUAL_Y, width - 40, RESIDUAL_Y),
        f'<text x="{width - 34}" y="{RESIDUAL_Y + 5}" font-size="13" fill="{MUTED}">next</text>',
        f'<text x="40" y="{RESIDUAL_Y + 34}" font-size="12" fill="{MUTED}">residual stream (frozen model: '
        "every grey box keeps its weights)</text>",
    ]


def block_svg(
    sites: tuple[str, ...] | list[str] = ("ffn",),
    ffn_module: str = "mlp.down_proj",
    attn_module: str = "self_attn.o_proj",
    caption: str = "",
) -> str:
    """One block: x → ⊕ x + Attn(Norm x) → ⊕ · + FFN(Norm ·), with a RED box after each edited projection."""
    attention = [Box("Norm", "", "norm", 70), Box("Self-attention", "q, k, v · softmax", "block", 150)]
    attention.append(Box(attn_module.split(".")[-1], "attention output", "site", 130, edited="attn" in sites))
    if "attn" in sites:
        attention.append(_red_box())
    ffn = [Box("Norm", "", "norm", 70), Box("FFN up", "gate · up → act", "block", 140)]
    ffn.append(Box(ffn_module.split(".")[-1], "FFN down-projection", "site", 140, edited="ffn" in sites))
    if "ffn" in sites:
        ffn.append(_red_box())
    first, plus_one = _branch(70, attention)
    second, plus_two = _branch(plus_one + 40, ffn)
    width = plus_two + 110
    height = 270 if caption else 236
    stream = _stream(plus_one, plus_two, width)
    if caption:
        stream.append(f'<text x="12" y="{height - 12}" font-size="13.5" fill="{INK}">{escape(caption)}</text>')
    defs = (
        f'<defs><marker id="{MARKER}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{INK}"/></marker></defs>'
    )
    marker = f"arrow-{zlib.crc32('|'.join([*sorted(sites), ffn_module, attn_module, caption]).encode()):08x}"
    body = "".join([defs, *stream, *first, *second]).replace(MARKER, marker)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="transformer block with RED edits" '
        f'font-family="Inter, Liberation Sans, Arial, sans-serif">{body}</svg>'
    )
