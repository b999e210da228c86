"""The README's Python example runs as written, on the real default model."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.real_model
def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) == 1 and "attach_red" in blocks[0]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert namespace["loss"] < namespace["base_loss"]
    assert (tmp_path / "my_edits" / "edits.safetensors").is_file()
    assert (tmp_path / "my_merged" / "config.json").is_file()


def test_readme_names_the_two_commands_and_the_space_metadata():
    text = README.read_text()
    assert text.startswith("---\ntitle: RED Explorer") and "sdk: gradio" in text and "app_file: app.py" in text
    assert "bash scripts/setup.sh && python app.py" in text
    assert "bash scripts/setup.sh --test && python -m pytest -q" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bash scripts/setup.sh --test" in ci and "python -m pytest -q" in ci


def test_the_train_tabs_edit_sites_help_says_what_the_readme_measured():
    from red_explorer.app.ui.components.train import SITES_HELP

    readme = README.read_text()
    section = " ".join(readme.split("### When to choose RED")[1].split())
    assert "is level with tuned LoRA r=8" in section and "Its price is forgetting: general text rises" in section
    assert SITES_HELP == (
        "Ticking both: about as good as tuned LoRA r=8 on the two generation samples we measured, but it forgets "
        "more general text than FFN only (README: When to choose RED)"
    )
