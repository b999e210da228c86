"""The guided lesson's words: one step per tab, from what RED is to a run's strength and token drift."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LessonStep:
    """One step: its title, the tab it opens (tab id and the tab's button text), the control it points at, the text."""

    title: str
    tab: str  # the gr.Tab id
    tab_label: str  # the text of that tab's button (the page clicks it, as a person would)
    focus: str  # elem_id of the live control the step talks about
    text: str


STEPS = (
    LessonStep(
        "What RED is",
        "about",
        "What is RED?",
        "about-figure",
        "RED leaves every weight of the model frozen. In each layer it learns just two vectors, a **scale** and a "
        "**bias**, and edits the FFN's output: `h' = scale ⊙ h + bias`. Training starts at scale = 1, bias = 0: "
        "exactly the base model.",
    ),
    # The run the lesson works on comes from a one-minute demo. Where the app lists ready-made runs (a gallery of
    # trained edits, no training to wait for), this step points at that list instead: its tab, focus and text.
    LessonStep(
        "A run to look at",
        "model",
        "Model",
        "demo-style",
        "Click **Teach it a style**: the app loads the small default model, trains RED and LoRA for 9 steps on "
        "pirate-speak answers (about a minute on a CPU) and opens Compare. Then come back with **Next**.",
    ),
    LessonStep(
        "What it learned, layer by layer",
        "inspect",
        "Inspect",
        "layers-plot-a",
        "Pick the RED run and press **Show**. Each bar is one layer: how far its scale moved from 1 and its bias "
        "from 0. The tallest bars are the layers the edit changed most; Run B puts another run on the same axes.",
    ),
    LessonStep(
        "Which part matters: the ablation table",
        "ablations",
        "Ablations",
        "ablation-rows",
        "The paper's ablation: scale only, bias only, both; after the FFN, after attention or both. Tick a few "
        "rows and press **Run ablation**: each row trains from the same frozen base on the same data, so the "
        "table's validation column compares them fairly.",
    ),
    LessonStep(
        "Side by side with LoRA",
        "compare",
        "Compare",
        "compare-cards",
        "The same prompt, the same greedy decoding: the base, RED and LoRA side by side. On the default model RED "
        "trains 34,560 parameters, LoRA r=8 460,800 (13 times as many). Type a prompt of your own and **Generate**.",
    ),
    LessonStep(
        "How strong, and where: strength and token drift",
        "explore",
        "Explore",
        "explore-strength",
        "Slide the **strength α**: 0 is the base, 1 the trained run, 2 doubles the edit. The **token drift** strip "
        "shades each token by how far the run moves the next-token prediction away from the base's.",
    ),
)

START = "▶ Start the lesson (6 steps, for a class)"
FINISHED = "That was the lesson. **End lesson** closes this panel; the app stays as it is."


def heading(index: int) -> str:
    """The step's heading as the panel shows it: 'Lesson · step 2 of 6 · A run to look at'."""
    return f"Lesson · step {index + 1} of {len(STEPS)} · {STEPS[index].title}"
