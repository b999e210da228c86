"""The "What is RED?" tab: the formula, where the edit sits (a figure), why it is cheap, how to use the app."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from red_explorer.app.ui.diagram import block_svg
from red_explorer.app.ui.texts import TARE_SENTENCE

FIGURE = Path(__file__).resolve().parents[3] / "assets" / "red_block.svg"
CAPTION = "RED: h' = scale ⊙ h + bias after the FFN down-projection of every layer"

INTRO = r"""
### What is RED?
**RED** (Representation EDiting, Wu et al. 2024, [arXiv 2402.15179](https://arxiv.org/abs/2402.15179)) fine-tunes a
transformer **without changing any of its weights**. In every layer it learns two vectors of the model's width,
a scaling $s$ and a bias $b$, and edits the hidden representation $h$ that leaves the feed-forward block:

$$h' = s \odot h + b$$

**Where:** on the output of the FFN down-projection, before the residual add (red boxes below).
$s$ starts at 1 and $b$ at 0, so training starts from exactly the base model.
"""

WHY = (
    r"""
**Why it is cheap:** $2 \times \text{hidden} \times \text{layers}$ parameters. SmolLM2-135M: $2 \times 576 \times 30$
= 34,560 (0.026 % of the model); Llama-2-7B: 262,144 (0.0039 %). The paper reports results close to LoRA
(GLUE, E2E, AlpacaEval) with far fewer parameters, e.g. GPT-2 medium on E2E: 0.05M for RED vs 0.8M for LoRA.
And because the edit is affine on a linear layer's output, it **folds into the weights**
($W' = \mathrm{diag}(s)\,W$, $b' = s \odot b_W + b$): zero inference overhead after merging.

**Tour:** ① **Model** a one-minute demo (one click: a model, a sample, a few training steps, the change), or pick the
base model · ② **Data** upload a CSV/JSONL or take a sample · ③ **Train** RED, LoRA, TARE and more with live loss
curves · ④ **Inspect** what each layer learned · ⑤ **Ablations** scale-only, bias-only, FFN vs attention, and a
learning-rate sweep · ⑥ **Compare** generations side by side · ⑦ **Explore** a run at any strength α, where its
predictions drift from the base, which layers it needs, arithmetic on runs · ⑧ **Export** the edits, the merged
model, or a Python snippet.

"""
    + TARE_SENTENCE
)


def figure_svg() -> str:
    """The committed figure (scripts/make_red_figure.py), or the same drawing made now."""
    if FIGURE.is_file():
        return FIGURE.read_text()
    return block_svg(("ffn",), caption=CAPTION)


def figure_html() -> str:
    """The wide figure, and for narrow screens the same block with one sublayer per row."""
    narrow = block_svg(("ffn",), caption=CAPTION, layout="stacked")
    wide = f'<div class="red-wide">{figure_svg()}</div>'
    return f'<div class="red-diagram">{wide}<div class="red-narrow">{narrow}</div></div>'


def build() -> dict:
    with gr.Tab("What is RED?", id="about") as tab:
        gr.Markdown(
            INTRO,
            latex_delimiters=[
                {"left": "$$", "right": "$$", "display": True},
                {"left": "$", "right": "$", "display": False},
            ],
        )
        gr.HTML(figure_html(), elem_id="about-figure")
        gr.Markdown(
            WHY,
            latex_delimiters=[
                {"left": "$$", "right": "$$", "display": True},
                {"left": "$", "right": "$", "display": False},
            ],
        )
    return {"tab": tab}
