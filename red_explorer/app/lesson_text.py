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
    gallery: tuple[str, ...] = ()  # gallery runs the step picks in its tab's run list when the user has none
    sample: str = ""  # a bundled sample the step loads (as the Data tab does) when no data is loaded


PIRATE_RED, PIRATE_LORA = "Pirate style · RED", "Pirate style · LoRA r=8"  # gallery runs (gallery.json titles)


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
    LessonStep(
        "A run to look at",
        "compare",
        "Compare",
        "compare-prepared",
        f"Here is **{PIRATE_RED}**, a ready-made run from the gallery (with runs of your own, tick it in the run "
        "list): RED trained on the small default model for 9 steps on pirate-speak answers. Its recorded answers "
        "stand beside the base model's at once, nothing to wait for; **Generate live** makes the first one again "
        "now. To train one yourself, the **Model** tab's **Teach it a style** trains RED and LoRA on the same data, "
        "9 steps each (43 s on an idle 2-core CPU, several minutes on a busy one: its bar shows the time left).",
        (PIRATE_RED,),
    ),
    LessonStep(
        "What it learned, layer by layer",
        "inspect",
        "Inspect",
        "layers-plot-a",
        "Run A is the RED run (yours, or the gallery's pirate run) and its bars show at once; another run: pick it "
        "and press **Show**. Each bar is one layer: how far its scale moved from 1 and its bias from 0. The tallest "
        "bars are the layers the edit changed most; Run B puts another run on the same axes.",
        (PIRATE_RED,),
    ),
    LessonStep(
        "Which part matters: the ablation table",
        "ablations",
        "Ablations",
        "ablation-rows",
        "The paper's ablation: scale only, bias only, both; after the FFN, after attention or both. Tick a few "
        "rows and press **Run ablation**: each row trains from the same frozen base on the same data (the one "
        "loaded in the **Data** tab), so the table's validation column compares them fairly.",
        sample="pirate_style.jsonl",
    ),
    LessonStep(
        "Side by side with LoRA",
        "compare",
        "Compare",
        "compare-cards",
        "The same prompt, the same greedy decoding: the base, RED and LoRA side by side (the gallery's pirate runs "
        "show their recorded answers above). On the default model RED trains 34,560 parameters, LoRA r=8 460,800 "
        "(13 times as many). Type a prompt of your own and **Generate**.",
        (PIRATE_RED, PIRATE_LORA),
    ),
    LessonStep(
        "How strong, and where: strength and token drift",
        "explore",
        "Explore",
        "explore-strength",
        "Slide the **strength α**: 0 is the base, 1 the trained run, 2 doubles the edit. The **token drift** strip "
        "shades each token by how far the run moves the next-token prediction away from the base's.",
        (PIRATE_RED,),
    ),
)

START = "▶ Start the lesson (6 steps, for a class)"
FINISHED = "That was the lesson. **End lesson** closes this panel; the app stays as it is."


def heading(index: int) -> str:
    """The step's heading as the panel shows it: 'Lesson · step 2 of 6 · A run to look at'."""
    return f"Lesson · step {index + 1} of {len(STEPS)} · {STEPS[index].title}"
