"""LN tuning (through PEFT) as an entry of the method registry: the gain and bias of the norm layers train."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from red_explorer.core.adapters import PeftAdapter, listed

NORM_CLASS_ENDING = "Norm"  # LayerNorm, LlamaRMSNorm, GemmaRMSNorm, T5LayerNorm, ...


def norm_layer_names(model: nn.Module, heads: list[str] | None = None) -> list[str]:
    """Every norm layer with parameters (LayerNorm, RMSNorm, ...), outside a classification head."""
    heads = set(heads or ())
    return [
        name
        for name, module in model.named_modules()
        if type(module).__name__.endswith(NORM_CLASS_ENDING)
        and next(module.parameters(recurse=False), None) is not None
        and name.split(".")[0] not in heads
    ]


@dataclass
class LnTuningOptions:
    """Which norm layers train."""

    target_modules: str | list[str] | None = field(
        default=None,
        metadata={"help": "None: PEFT's norm layers for this family, or every norm layer where PEFT names none"},
    )

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, tuple | set):
            self.target_modules = sorted(self.target_modules)
        if self.target_modules is not None and not isinstance(self.target_modules, str | list):
            raise ValueError(f"LN tuning target_modules must be a regex, a list or None, got {self.target_modules!r}")
        if isinstance(self.target_modules, list) and not self.target_modules:
            raise ValueError("LN tuning target_modules is empty: name at least one norm layer, or None for all")


class LnTuning(PeftAdapter):
    """LN tuning: LN(x) = γ ⊙ (x − μ) / σ + β (RMSNorm: γ ⊙ x / rms(x)), with γ and β trained.

    PEFT trains a copy of each chosen norm layer and keeps the original for switching off; merging
    puts the trained copy in the original's place. Defaults per family are PEFT's (Llama: input,
    post-attention and final norms; GPT-2: ln_1, ln_2, ln_f); for a family PEFT does not list (BERT,
    OPT, GPT-NeoX) every norm layer outside the classification head trains.
    """

    name = "lntuning"
    title = "LN tuning"
    options = LnTuningOptions
    marker = "ln_tuning_layers"
    # No tuned rate is published for decoders: PEFT's method comparison (Llama-3.2-3B, MetaMathQA) ran LN
    # tuning at its 1e-4 default and scored 0 % on GSM8K. 5e-3 is where the comparable vector method (IA3)
    # did best in that comparison (45.5 %).
    # best of the measured sweep (benchmarks/method_choice/pirate_style, SmolLM2-135M)
    default_learning_rate = 1.5e-2

    def label(self, options: LnTuningOptions) -> str:
        return "LN tuning"

    def peft_config(self, model: nn.Module, options: LnTuningOptions, task_type: str, heads: list[str] | None):
        from peft import LNTuningConfig
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING

        targets = options.target_modules
        if targets is None and model.config.model_type not in TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING:
            targets = norm_layer_names(model, heads)
            if not targets:
                raise ValueError(
                    f"this '{model.config.model_type}' model has no norm layer with parameters to tune: "
                    "name them with target_modules (module names or a regex)"
                )
        return LNTuningConfig(target_modules=targets, task_type=task_type, modules_to_save=heads)

    def options_from(self, adapter: dict) -> LnTuningOptions:
        return LnTuningOptions(target_modules=listed(adapter.get("target_modules")))
