"""(IA)³ (through PEFT) as an entry of the method registry: learned vectors that rescale keys, values and FFN input."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from red_explorer.core.adapters import PeftAdapter, listed

MODULES_HINT = "e.g. target_modules=['k_proj', 'v_proj', 'down_proj'] with feedforward_modules=['down_proj']"


def _names(value, option: str):
    """A regex (str), a list of module-name suffixes, or None; a tuple or set becomes a list."""
    if isinstance(value, tuple | set):
        value = sorted(value)
    if value is not None and not isinstance(value, str | list):
        raise ValueError(f"IA3 {option} must be a regex, a list of module names or None, got {value!r}")
    return value


@dataclass
class Ia3Options:
    """Which modules get a vector; the feedforward ones scale their input, the others their output."""

    target_modules: str | list[str] | None = field(
        default=None, metadata={"help": "None: PEFT's modules for this family (keys, values, FFN down-projection)"}
    )
    feedforward_modules: str | list[str] | None = field(
        default=None,
        metadata={
            "help": "targets whose input is scaled; None: PEFT's FFN module (if targets are None too), else none"
        },
    )

    def __post_init__(self) -> None:
        self.target_modules = _names(self.target_modules, "target_modules")
        self.feedforward_modules = _names(self.feedforward_modules, "feedforward_modules")
        if self.feedforward_modules is not None and self.target_modules is None:
            raise ValueError(f"IA3 feedforward_modules must be among the target_modules: give both ({MODULES_HINT})")
        if isinstance(self.target_modules, list) and isinstance(self.feedforward_modules, list):
            outside = sorted(set(self.feedforward_modules) - set(self.target_modules))
            if outside:
                raise ValueError(f"IA3 feedforward_modules {outside} are not in target_modules; add them there")


class Ia3(PeftAdapter):
    """(IA)³: y = l ⊙ (W x) on attention keys and values, y = W (l ⊙ x) on the FFN down-projection.

    Each vector l (out,) or (in,) starts at 1 (the identity) and trains; W is frozen. Merging folds l
    into W's rows (output) or columns (input). PEFT's targets per family: Llama/Mistral k_proj, v_proj,
    down_proj; Qwen2/Gemma q_proj, v_proj, down_proj; GPT-2 c_attn (q, k and v together) and mlp.c_proj;
    BERT/RoBERTa key, value and the output dense layers.
    """

    name = "ia3"
    title = "IA3"
    options = Ia3Options
    marker = "ia3_l"
    # T-Few (Liu et al. 2022, the (IA)³ paper) trains at 3e-3; PEFT's method comparison (Llama-3.2-3B,
    # MetaMathQA) found the same order best: 45.5 % GSM8K at 5e-3 against 31.1 % at 1e-4.
    # best of the measured sweep (benchmarks/method_choice/pirate_style, SmolLM2-135M)
    default_learning_rate = 2.7e-2

    def label(self, options: Ia3Options) -> str:
        return "IA3"

    def peft_config(self, model: nn.Module, options: Ia3Options, task_type: str, heads: list[str] | None):
        from peft import IA3Config
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING

        model_type = model.config.model_type
        if options.target_modules is None and model_type not in TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING:
            raise ValueError(f"PEFT has no default IA3 modules for a '{model_type}' model: name them, {MODULES_HINT}")
        feedforward = options.feedforward_modules
        if options.target_modules is not None and feedforward is None:
            feedforward = []  # targets named without feedforward ones: every vector scales an output
        return IA3Config(
            target_modules=options.target_modules,
            feedforward_modules=feedforward,
            task_type=task_type,
            modules_to_save=heads,
        )

    def options_from(self, adapter: dict) -> Ia3Options:
        return Ia3Options(
            target_modules=listed(adapter.get("target_modules")),
            feedforward_modules=listed(adapter.get("feedforward_modules")),
        )
