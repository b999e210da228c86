"""BitFit as an entry of the method registry: only the model's existing bias parameters train."""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

from torch import nn

from red_explorer.core.bitfit.edit import (
    BitfitOptions,
    attach_bitfit,
    bitfit_disabled,
    detach_bitfit,
    get_bitfit_state,
    trained_biases,
)
from red_explorer.core.checkpoint import (
    CONFIG_FILE,
    EditsFileError,
    check_fits,
    check_tensors,
    copy_into,
    read_record,
    read_record_for,
    read_tensors,
    write_edits,
)
from red_explorer.core.method import Method
from red_explorer.core.state import STATE_ATTRIBUTE


class Bitfit(Method):
    """BitFit: y = W x + b with W frozen and b trained, for every existing bias b (linear and norm layers).

    The trained model is a plain model of the same architecture, so merging is the model itself and
    the edits folder holds only the biases (and a classification head). A model without biases
    (Llama family) is refused: BitFit adds none; RED's bias variant is the closest method that does.
    """

    name = "bitfit"
    title = "BitFit"
    options = BitfitOptions
    # The BitFit authors' GLUE script (benzakenelad/BitFit, run_glue.py) defaults to 1e-3 with AdamW.
    default_learning_rate = 1e-3
    quantized_base_refusal = (
        "its trained model is the base itself, so it would be saved and merged as a quantized checkpoint; "
        "RED's bias variant trains the same kind of bias on a quantized base"
    )

    def label(self, options: BitfitOptions) -> str:
        return "BitFit" if options.target_modules is None else f"BitFit ({options.target_modules})"

    def attach(self, model: nn.Module, options: BitfitOptions, task: str, head_parameter_names=()) -> nn.Module:
        attach_bitfit(model, options, head_parameter_names)
        return model

    def parameter_count(self, model: nn.Module) -> int:
        return sum(bias.numel() for bias in trained_biases(model).values())

    def disabled(self, model: nn.Module):
        return bitfit_disabled(model)

    def detach(self, model: nn.Module) -> nn.Module:
        detach_bitfit(model)
        return model

    def save(self, model: nn.Module, directory: Path, base_model: str | None, head_parameter_names) -> Path:
        state = get_bitfit_state(model)
        section = asdict(state.config)
        tensors = trained_biases(model)
        return write_edits(model, directory, "bitfit", section, tensors, state.sites, base_model, head_parameter_names)

    def holds(self, directory: Path) -> bool:
        return (directory / CONFIG_FILE).is_file() and read_record(directory).get("method") == "bitfit"

    def load_in_place(self, model: nn.Module, directory: Path) -> BitfitOptions:
        """Attach BitFit to ``model`` (a fresh base) and copy the saved biases in, after validating all."""
        record = read_record_for(directory, "bitfit")
        check_fits(model, record)
        tensors = read_tensors(directory)
        try:
            options = BitfitOptions(**record["bitfit"])
        except (KeyError, TypeError, ValueError) as error:
            raise EditsFileError(f"{directory}: the config has no valid 'bitfit' section: {error}") from error
        heads = record.get("head_parameters", [])
        attach_bitfit(model, options, heads)
        try:
            expected = {name: tuple(bias.shape) for name, bias in trained_biases(model).items()}
            check_tensors(expected | {name: None for name in heads}, tensors)
            copy_into(model, tensors)
        except EditsFileError:
            detach_bitfit(model)
            raise
        return options

    def load(self, model: nn.Module, directory: Path) -> tuple[nn.Module, BitfitOptions]:
        return model, self.load_in_place(model, directory)

    def merge_and_unload(self, model: nn.Module) -> nn.Module:
        merged = copy.deepcopy(model)  # the trained biases are the model's own: a copy without the edit state
        delattr(merged, STATE_ATTRIBUTE)
        return merged
