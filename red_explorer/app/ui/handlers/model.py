"""Model tab: choose and load the base model; see its shape, where RED edits it, and what each method trains."""

from __future__ import annotations

from red_explorer.app.model_info import ModelInfo
from red_explorer.app.plots import parameter_figure
from red_explorer.app.ui.diagram import block_svg
from red_explorer.app.ui.handlers.common import count
from red_explorer.app.ui.session import Session, open_sessions


def info_markdown(info: ModelInfo) -> str:
    """The model at a glance, as a small table."""
    red = info.parameter_counts["RED (FFN)"]
    lines = [
        f"### {info.architecture} · `{info.spec}`",
        "| property | value |",
        "|---|---|",
        f"| family | {info.family} ({info.model_type}) |",
        f"| layers | {info.num_layers} |",
        f"| hidden size | {info.hidden_size} |",
        f"| FFN size | {info.intermediate_size or '–'} |",
        f"| parameters | {info.total_parameters:,} ({count(info.total_parameters)}) |",
        f"| device · dtype | {info.device} · {info.dtype} |",
        f"| RED edits | `{info.ffn_module.replace('.0.', '.{i}.')}` output, {info.num_layers} layers |",
        f"| RED parameters | 2 × {info.hidden_size} × {info.num_layers} = **{red:,}** "
        f"({100 * red / info.total_parameters:.3g}% of the model) |",
    ]
    lines += [f"\n> **Note:** {note}" for note in info.notes]
    return "\n".join(lines)


def diagram_html(info: ModelInfo, sites: tuple[str, ...] = ("ffn",)) -> str:
    ffn = info.ffn_module.split(".0.", 1)[-1]
    attn = info.attn_module.split(".0.", 1)[-1]
    caption = (
        f"One of {info.num_layers} blocks. RED learns scale and bias ({info.hidden_size} values each) "
        f"on the output of {ffn}, before the residual add."
    )
    return f'<div class="red-diagram">{block_svg(sites, ffn, attn, caption)}</div>'


def load_model(session: Session, spec: str, task: str, device: str, dtype: str):
    """Load (or reuse) the base model: (summary, block diagram, parameter chart, status line)."""
    info = session.workbench.load_model(spec or "default", task, device, dtype)
    figure = parameter_figure(info.parameter_counts, info.total_parameters, "Trainable parameters per method")
    return info_markdown(info), diagram_html(info), figure, model_status(session)


def model_status(session: Session) -> str:
    """One line: which base model this session uses and whether it is ready."""
    workbench = session.workbench
    key = workbench.key
    status = workbench.model_status()
    icon = {"ready": "●", "loading": "◌", "not loaded": "○"}.get(status, "✕")
    where = "" if key.device == "auto" else f" on {key.device}"
    note = " (loads on first use)" if status == "not loaded" else ""
    sessions = open_sessions()
    others = f" · {sessions} open sessions" if sessions > 1 else ""
    return f"{icon} Base model **{key.spec}** ({key.task}){where}: {status}{note}{others}"
