"""A kept run as a Jupyter notebook that reproduces it with the library: same base, data, method, settings and seed."""

from __future__ import annotations

import pprint
from collections.abc import Iterable
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from red_explorer.runs.gallery import recipe_data_config
from red_explorer.runs.notebook_data import data_lines, locate
from red_explorer.runs.record import RunRecord

PROMPTS_SHOWN = 3  # validation prompts the notebook generates for, with the base and with the run
NEW_TOKENS = 48
REPRODUCED_FOLDER = "reproduced"  # the notebook saves what it trained here, next to itself


def run_notebook(record: RunRecord, data_files: Iterable[str | Path] = ()) -> nbformat.NotebookNode:
    """The notebook of ``record``; ``data_files`` are files that may be its data (matched by sha256).

    Raises ValueError for a run with no training to reproduce (imported or composed edits).
    """
    if not record.data or record.stopped_reason == "imported" or not record.loss_history:
        raise ValueError(
            f"run {record.label!r} was not trained here (imported or composed edits): it has no data and "
            "training settings to reproduce; download its edits instead"
        )
    validation = record.data.get("validation")
    cells = [
        new_markdown_cell(_introduction(record)),
        new_code_cell(_setup(record)),
        new_markdown_cell("## The data\nThe same file, read with the same settings (max length, split, seed)."),
        new_code_cell(_data(record, list(data_files), validation)),
        new_markdown_cell("## The base model's answers\nGreedy generations on validation prompts, before training."),
        new_code_cell(_base_generations(record)),
        new_markdown_cell(f"## Train {record.method_spec.label}\nSame method, settings and seed as the run."),
        new_code_cell(_train(record)),
        new_markdown_cell("## Same numbers as the run?\nThe run's recorded training loss against this notebook's."),
        new_code_cell(_check(record)),
        *_inspect_cells(record),
        *_compare_cells(record),
        new_markdown_cell(f"## Keep it\nThe trained method's files and metrics go to `{REPRODUCED_FOLDER}/`."),
        new_code_cell(_save()),
    ]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def write_run_notebook(record: RunRecord, out: str | Path, data_files: Iterable[str | Path] = ()) -> Path:
    """Write ``run_notebook(record, data_files)`` to ``out`` (an .ipynb path); returns it."""
    out = Path(out)
    if out.suffix != ".ipynb":
        raise ValueError(f"the notebook's file name must end in .ipynb, got {out.name!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(run_notebook(record, data_files), out)
    return out


def _introduction(record: RunRecord) -> str:
    base, data = record.base, record.data
    trained = f"{record.steps} steps, seed {record.train_config.get('seed', 0)}"
    return (
        f"# Reproduce the run “{record.label}”\n"
        f"Trained with RED Explorer on **{base.base_name}** ({base.task}): **{record.method_spec.label}** on "
        f"`{data['name']}`, {trained}.\n\n"
        "This notebook repeats it with the `red_explorer` library: load the base and the data, train with the same "
        "method, settings and seed, check the loss against the run's, look at what it learned per layer, and "
        "compare its answers with the base's. On the same device the numbers match the run's; another device "
        "or library version can differ in the last digits. It needs no network for the embedded default model."
    )


def _setup(record: RunRecord) -> str:
    base = record.base
    arguments = [repr(base.spec), f"task={base.task!r}", f"dtype={base.dtype!r}"]
    if base.num_labels is not None:
        arguments.append(f"num_labels={base.num_labels}")
    if base.quantize:
        arguments.append(f"quantize={base.quantize!r}")
    return "\n".join(
        [
            "from pathlib import Path",
            "",
            "import plotly.graph_objects as go",
            "",
            "from red_explorer import MethodSpec, load_model",
            "from red_explorer.core.registry import save_method",
            "from red_explorer.data.bundled import SAMPLE_FOLDER",
            "from red_explorer.data.prepared import prepare_data",
            "from red_explorer.data.render import prompt_text, reference_text",
            "from red_explorer.data.tables import DataConfig",
            "from red_explorer.engine.experiment import train_method",
            "from red_explorer.engine.generation import Contender, DecodingSettings, compare_generations",
            "from red_explorer.engine.training import TrainConfig",
            "from red_explorer.runs.record import file_sha256",
            "",
            f"loaded = load_model({', '.join(arguments)})",
            "print(loaded.base_name, loaded.device, loaded.dtype)",
        ]
    )


def _data(record: RunRecord, candidates: list, validation: dict | None) -> str:
    config = record.data.get("config") or recipe_data_config(record)  # a gallery run's recipe records them
    lines = data_lines("DATA", record.data, locate(record.data, candidates))
    if validation:
        lines += data_lines("VALIDATION", validation, locate(validation, candidates))
    if config:
        lines += [f"data_config = DataConfig(**{_settings(config)})"]
    else:
        lines += ["data_config = DataConfig(task=loaded.task)  # the run did not record its data settings"]
    lines += [
        f"data = prepare_data(DATA, loaded.tokenizer, data_config{', VALIDATION' if validation else ''})",
        "print(data.detected.description, {split: data.raw[split].num_rows for split in ('train', 'validation')})",
    ]
    return "\n".join(lines)


def _base_generations(record: RunRecord) -> str:
    if record.base.task == "classification":
        return "# a classifier answers with a label: the validation accuracy before and after training shows it"
    return "\n".join(
        [
            f"examples = list(data.raw['validation'])[:{PROMPTS_SHOWN}]",
            "prompts = [prompt_text(example, data.detected, loaded.tokenizer) for example in examples]",
            "references = [reference_text(example, data.detected) for example in examples]",
            f"decoding = DecodingSettings(max_new_tokens={NEW_TOKENS})  # greedy",
            "base = Contender('base', loaded.model)",
            "base_answers = compare_generations([base], loaded.tokenizer, prompts, decoding)",
        ]
    )


def _train(record: RunRecord) -> str:
    return "\n".join(
        [
            f"spec = MethodSpec.from_dict({_settings(record.spec)})",
            f"train_config = TrainConfig(**{_settings(record.train_config)})",
            "result = train_method(loaded, data, spec, train_config)",
            "print(spec.label, result.trainable_parameters, 'trainable parameters')",
            "print('validation before:', result.metrics_before)",
            "print('validation after: ', result.metrics_after)",
        ]
    )


def _check(record: RunRecord) -> str:
    return "\n".join(
        [
            f"recorded_loss = {_literal(record.loss_history)}",
            f"recorded_after = {_literal(record.metrics_after)}",
            "difference = max(abs(a - b) for a, b in zip(recorded_loss, result.train_loss, strict=True))",
            "print(f'largest difference from the recorded training loss: {difference:.2e}')",
            "print('recorded validation after:', recorded_after)",
            "steps = list(range(1, len(recorded_loss) + 1))",
            "figure = go.Figure([go.Scatter(x=steps, y=recorded_loss, name='the run'),",
            "                    go.Scatter(x=steps, y=result.train_loss, name='this notebook', line_dash='dot')])",
            "figure.update_layout(xaxis_title='step', yaxis_title='training loss', height=350)",
            "figure.show()",
        ]
    )


def _inspect_cells(record: RunRecord) -> list:
    if record.method != "red":
        return [new_markdown_cell(f"{record.method_spec.label} has no per-layer scale and bias to plot (RED has).")]
    code = "\n".join(
        [
            "from red_explorer import red_vectors",
            "from red_explorer.engine.analysis import layer_magnitudes, site_edits",
            "",
            "figure = go.Figure()",
            "for kind in layer_magnitudes(site_edits(red_vectors(result.model))):",
            "    figure.add_bar(x=kind.layers, y=kind.scale, name=f'|scale − 1| ({kind.kind})')",
            "    figure.add_bar(x=kind.layers, y=kind.bias, name=f'|bias| ({kind.kind})')",
            "figure.update_layout(barmode='group', xaxis_title='layer', yaxis_title='mean over dimensions')",
            "figure.show()",
        ]
    )
    title = "## What it learned per layer\nMean |scale − 1| and |bias| of each layer's edit (`h' = scale ⊙ h + bias`)."
    return [new_markdown_cell(title), new_code_cell(code)]


def _compare_cells(record: RunRecord) -> list:
    if record.base.task == "classification":
        return []
    code = "\n".join(
        [
            f"run = Contender({record.label!r}, result.model)",
            "answers = compare_generations([run], loaded.tokenizer, prompts, decoding)",
            "for prompt, reference, before, after in zip(prompts, references, base_answers, answers, strict=True):",
            "    print('PROMPT   ', prompt.strip())",
            "    print('BASE     ', before.text)",
            "    print('RUN      ', after.text)",
            "    print('REFERENCE', reference, end='\\n\\n')",
        ]
    )
    title = "## Side by side with the base\nSame prompts, same greedy decoding."
    return [new_markdown_cell(title), new_code_cell(code)]


def _save() -> str:
    return "\n".join(
        [
            "import json",
            "",
            f"folder = Path({REPRODUCED_FOLDER!r})",
            "save_method(result.model, spec, folder, loaded.base_name, loaded.head_parameter_names)",
            "(folder / 'metrics.json').write_text(json.dumps(result.metrics(), indent=1))",
            "print('saved in', folder)",
        ]
    )


def _literal(value) -> str:
    """``value`` as a Python literal (dicts, lists, numbers, strings, None)."""
    return pprint.pformat(value, width=100, sort_dicts=False)


def _settings(value) -> str:
    """Settings as a Python literal, whole numbers as integers (``'epochs': 4``, not ``4.0``)."""
    return _literal(_whole_numbers(value))


def _whole_numbers(value):
    """``value`` with every float that is a whole number (4.0) as an int (4), in dicts and lists too."""
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_whole_numbers(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
