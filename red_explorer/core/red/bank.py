"""Many RED edits on one loaded model: a bank of stacked edits, per-row edits in a batch, in-place swaps."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from red_explorer.core.checkpoint import EditsFileError, read_record_for, read_tensors
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import BIAS, SCALE, RowEdits, get_state, red_vectors
from red_explorer.core.red.merge import merge_red, unmerge_red
from red_explorer.core.sites import output_size

SUFFIXES = (f".{SCALE}", f".{BIAS}")


@dataclass
class EditBank:
    """N RED edits of the same sites, stacked so that one batch can use them all.

    Row b of a batch that selects edit i = row_ids[b] computes, at every site,
    RED_i(h_b) = scales[site][i] ⊙ h_b + biases[site][i]. An edit without a scale vector (bias-only)
    stacks ones there, one without a bias vector (scale-only) stacks zeros: the same function.
    """

    site_names: list[str]
    scales: dict[str, torch.Tensor]  # site name -> (N, H)
    biases: dict[str, torch.Tensor]  # site name -> (N, H)
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        sizes = {tensor.shape[0] for tensor in [*self.scales.values(), *self.biases.values()]}
        if len(sizes) != 1 or set(self.scales) != set(self.site_names) or set(self.biases) != set(self.site_names):
            raise ValueError("an EditBank needs one (N, H) scale and bias tensor per site, with the same N")
        if not self.labels:
            self.labels = [f"edit {index}" for index in range(self.size)]
        if len(self.labels) != self.size:
            raise ValueError(f"{len(self.labels)} labels for {self.size} edits")

    @property
    def size(self) -> int:
        """N, the number of stacked edits."""
        return next(iter(self.scales.values())).shape[0]

    @classmethod
    def from_vectors(cls, edits: Sequence[Mapping[str, torch.Tensor]], labels: Sequence[str] = ()) -> EditBank:
        """Stack edits given as ``red_vectors``-style dicts (``<module>.red_scale`` / ``<module>.red_bias``)."""
        if not edits:
            raise ValueError("an EditBank needs at least one edit")
        site_names = _site_names(edits[0])
        for index, edit in enumerate(edits[1:], start=1):
            if set(_site_names(edit)) != set(site_names):
                raise ValueError(f"edit {index} edits other modules than edit 0: all edits must share their sites")
        scales, biases = {}, {}
        with torch.no_grad():
            for site in site_names:
                scales[site] = torch.stack([_vector(edit, site, SCALE) for edit in edits])  # (N, H)
                biases[site] = torch.stack([_vector(edit, site, BIAS) for edit in edits])  # (N, H)
        return cls(site_names, scales, biases, list(labels))

    @classmethod
    def from_directories(cls, model: nn.Module, directories: Sequence[str | Path]) -> EditBank:
        """Stack saved RED edits directories that fit ``model``; on the model's device and dtype."""
        edits = [_read_directory(model, directory) for directory in directories]
        parameter = next(model.parameters())
        bank = cls.from_vectors(edits, [str(directory) for directory in directories])
        return bank.to(parameter.device, parameter.dtype)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> EditBank:
        """A copy of the bank on ``device`` / in ``dtype`` (store it like the model's outputs: no casts per step)."""
        move = {"device": device, "dtype": dtype}
        return EditBank(
            list(self.site_names),
            {site: tensor.to(**move) for site, tensor in self.scales.items()},
            {site: tensor.to(**move) for site, tensor in self.biases.items()},
            list(self.labels),
        )

    def red_config(self) -> RedConfig:
        """The RED config that attaches exactly this bank's sites: ``attach_red(model, bank.red_config())``."""
        return RedConfig(target_modules=list(self.site_names))

    def vectors(self, index: int) -> dict[str, torch.Tensor]:
        """Edit ``index`` as a ``red_vectors``-style dict of scale and bias (for ``swap_edits``)."""
        result = {}
        for site in self.site_names:
            result[f"{site}.{SCALE}"] = self.scales[site][index]
            result[f"{site}.{BIAS}"] = self.biases[site][index]
        return result


def _site_names(edit: Mapping[str, torch.Tensor]) -> list[str]:
    names = []
    for key in edit:
        if not key.endswith(SUFFIXES):
            raise ValueError(f"{key!r} is not a RED vector name (<module>.{SCALE} or <module>.{BIAS})")
        site = key.rsplit(".", 1)[0]
        if site not in names:
            names.append(site)
    return names


def _vector(edit: Mapping[str, torch.Tensor], site: str, kind: str) -> torch.Tensor:
    """The (H,) vector of one kind, or its identity (ones / zeros) when the edit lacks it."""
    present = edit.get(f"{site}.{kind}")
    if present is not None:
        return present.detach().float()
    other = edit[f"{site}.{BIAS if kind == SCALE else SCALE}"]
    fill = torch.ones_like if kind == SCALE else torch.zeros_like
    return fill(other, dtype=torch.float32)


def _read_directory(model: nn.Module, directory: str | Path) -> dict[str, torch.Tensor]:
    """The RED vectors of an edits directory, after checking that they fit ``model``."""
    record = read_record_for(directory, "red")
    if record.get("head_parameters"):
        raise EditsFileError(f"{directory} carries a classification head: heads cannot differ between batch rows")
    if record.get("model_type") != model.config.model_type:
        raise EditsFileError(f"{directory} was trained on a '{record.get('model_type')}' model, not this one")
    modules = dict(model.named_modules())
    tensors = read_tensors(directory)
    for name, tensor in tensors.items():
        site = name.rsplit(".", 1)[0]
        if site not in modules or tuple(tensor.shape) != (output_size(modules[site]),):
            raise EditsFileError(f"{directory}: tensor {name} does not fit this model")
        if not torch.isfinite(tensor).all():
            raise EditsFileError(f"{directory}: tensor {name} holds NaN or infinite values")
    return tensors


@contextmanager
def per_row_edits(model: nn.Module, bank: EditBank, row_ids: Sequence[int] | torch.Tensor) -> Iterator[None]:
    """Inside this block, row b of every batch is edited by edit ``row_ids[b]`` of ``bank``.

    The model must carry RED on exactly the bank's sites (``attach_red(model, bank.red_config())`` or
    ``load_edits``) and not be merged. Works for forward passes and ``generate`` (greedy or sampled,
    one sequence per row: beams or ``num_return_sequences`` change the batch size and are refused).
    """
    state = get_state(model)
    if state.merged_backup is not None:
        raise ValueError("the edits are merged into the weights: call unmerge_red(model) before per-row edits")
    attached = [site.name for site in state.sites]
    if set(attached) != set(bank.site_names):
        raise ValueError(
            f"the model carries RED on {len(attached)} sites, the bank edits {len(bank.site_names)} others; "
            "attach with attach_red(model, bank.red_config())"
        )
    device = next(iter(bank.scales.values())).device
    rows = torch.as_tensor(row_ids, dtype=torch.long, device=device)
    if rows.dim() != 1 or rows.numel() == 0:
        raise ValueError(f"row_ids must be a non-empty 1-D sequence of edit indices, got shape {tuple(rows.shape)}")
    if int(rows.min()) < 0 or int(rows.max()) >= bank.size:
        raise ValueError(f"row_ids must lie in 0..{bank.size - 1} (the bank holds {bank.size} edits)")
    previous, state.row_edits = state.row_edits, RowEdits(rows, bank.scales, bank.biases)
    try:
        yield
    finally:
        state.row_edits = previous


def swap_edits(model: nn.Module, source: str | Path | Mapping[str, torch.Tensor]) -> None:
    """Replace the attached RED vectors in place (``copy_``), without re-attaching: the fast switch.

    ``source`` is an edits directory or a ``red_vectors``-style dict with exactly the attached
    vectors (same sites, same variant); a directory's classification head is copied too. Everything is
    checked before anything is written. A merged model is unmerged, swapped and merged again.
    """
    parameters = red_vectors(model)
    if isinstance(source, (str, Path)):
        record = read_record_for(source, "red")
        if record.get("model_type") != model.config.model_type:
            raise EditsFileError(f"{source} does not hold RED edits for a '{model.config.model_type}' model")
        tensors = read_tensors(source)
        heads = dict(model.named_parameters()) if record.get("head_parameters") else {}
        parameters = parameters | {name: heads[name] for name in record.get("head_parameters", []) if name in heads}
    else:
        tensors = dict(source)
    _check_swap(parameters, tensors)
    state = get_state(model)
    merged = state.merged_backup is not None
    if merged:
        unmerge_red(model)
    with torch.no_grad():
        for name, tensor in tensors.items():
            parameters[name].copy_(tensor)
    if merged:
        merge_red(model)


def _check_swap(parameters: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor]) -> None:
    missing, extra = sorted(set(parameters) - set(tensors)), sorted(set(tensors) - set(parameters))
    if missing or extra:
        raise EditsFileError(
            f"the new edits do not match the attached ones (missing {missing[:3]}, unexpected {extra[:3]}): "
            "swap only between edits of the same sites and variant, or detach_red and load_edits"
        )
    for name, tensor in tensors.items():
        if tensor.shape != parameters[name].shape:
            raise EditsFileError(f"{name}: new shape {tuple(tensor.shape)}, attached {tuple(parameters[name].shape)}")
        if not torch.isfinite(tensor).all():
            raise EditsFileError(f"{name} holds NaN or infinite values: these edits are broken")
