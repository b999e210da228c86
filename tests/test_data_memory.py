"""Data loading stays bounded: one 50 MB line and a 200,000-row file, each measured in a fresh process."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tiny_models import tiny_tokenizer

from red_explorer.data.tables import CHARS_PER_TOKEN, ROW_LIMIT

ROOT = Path(__file__).resolve().parents[1]
MAX_LENGTH = 2048  # the app's probe length (data_state.LENGTH_PROBE)


def write_files(folder: Path) -> tuple[Path, Path]:
    long_line = folder / "long.csv"
    with open(long_line, "w") as handle:
        handle.write("prompt,response\nhello there," + "word " * 9_980_000 + "\n")  # one 49.9 MB line
        handle.writelines(f"question {row},answer {row}\n" for row in range(20))
    many_rows = folder / "rows.jsonl"
    with open(many_rows, "w") as handle:
        handle.writelines(
            json.dumps({"prompt": f"what is {row} plus one", "response": f"it is {row + 1}"}) + "\n"
            for row in range(200_000)
        )
    return long_line, many_rows


def test_a_50_mb_line_and_200000_rows_load_in_bounded_memory(tmp_path):
    tokenizer = tmp_path / "tokenizer"
    words = "what is one plus two it is three hello there word answer question"
    tiny_tokenizer([words], chat=False).save_pretrained(tokenizer)
    files = write_files(tmp_path)
    assert files[0].stat().st_size > 49_900_000
    environment = os.environ | {"PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "tests" / "data_memory.py")]
    runs = [
        subprocess.Popen(
            [*command, str(path), str(tokenizer), str(MAX_LENGTH)], stdout=subprocess.PIPE, env=environment
        )
        for path in files
    ]
    long_line, many_rows = (json.loads(run.communicate(timeout=120)[0]) for run in runs)
    max_chars = MAX_LENGTH * CHARS_PER_TOKEN
    assert long_line["rows"] == 21 and long_line["longest"] == MAX_LENGTH
    assert f"cut the long fields of 1 row to {max_chars:,} characters" in long_line["description"]
    assert long_line["added_bytes"] < 400_000_000 and long_line["seconds"] < 20
    assert many_rows["rows"] == ROW_LIMIT == 20_000
    assert "used the first 20,000 of its 200,000 rows" in many_rows["description"]
    assert many_rows["added_bytes"] < 400_000_000
