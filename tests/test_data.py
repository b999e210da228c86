"""Tests of the data layer: reading, format detection, bad input, splitting, the bundled samples."""

from __future__ import annotations

import json

import pytest
from data_helpers import SAMPLES, build_tokenizer, pairs, write

from red_explorer.data.tables import DataConfig, DataError, DetectedFormat, load_table
from red_explorer.data.tokenize import tokenize_dataset

# ---------------------------------------------------------------- formats and detection

FORMAT_CASES = [
    ("data.csv", [{" Prompt ": f"p{i}", "RESPONSE": f"r{i}"} for i in range(10)], "causal-lm", "prompt/response",
     ("prompt", "response")),
    ("data.tsv", [{"instruction": f"do {i}", "input": f"x{i}" if i % 2 else "", "output": f"y{i}"} for i in range(10)],
     "causal-lm", "instruction/input/output", ("instruction", "input", "output")),
    ("data.json", [{"Question": f"q{i}?", "Answer": f"a{i}", "id": i} for i in range(10)], "causal-lm",
     "question/answer", ("question", "answer")),
    ("data.jsonl", [{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "yo"}]}
                    for i in range(10)], "causal-lm", "messages", ("messages",)),
    ("data.parquet", [{"text": f"review {i}", "label": ["good", "bad"][i % 2]} for i in range(10)], "classification",
     "text/label", ("text", "label")),
    ("data.csv", [{"sentence1": f"a{i}", "sentence2": f"b{i}", "label": i % 2} for i in range(10)], "classification",
     "sentence pair/label", ("sentence1", "sentence2", "label")),
    ("data.jsonl", [{"text": f"some text {i}"} for i in range(10)], "causal-lm", "text", ("text",)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rows", "task", "kind", "columns"), FORMAT_CASES)
def test_each_format_loads_and_detects_its_kind(tmp_path, name, rows, task, kind, columns):
    path = write(tmp_path / name, rows)
    splits, detected = load_table(path, DataConfig(task=task))
    assert detected.kind == kind
    assert detected.columns == columns
    assert detected.file_format == {".tsv": "tsv", ".json": "json"}.get(path.suffix, path.suffix[1:])
    assert (detected.num_train, detected.num_validation) == (9, 1)
    assert splits["train"].column_names == list(columns)
    assert splits["train"].num_rows == 9 and splits["validation"].num_rows == 1


def test_description_names_the_kind_columns_and_split_sizes(tmp_path):
    rows = [{"Prompt": f"p{i}", "response": f"r{i}", "id": i} for i in range(20)]
    _, detected = load_table(write(tmp_path / "d.csv", rows), DataConfig())
    assert detected.description == (
        "prompt/response pairs (columns Prompt, response): 18 train, 2 validation; ignored columns id"
    )
    assert detected.source_columns == {"prompt": "Prompt", "response": "response"}


def test_txt_reads_one_example_per_line(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("first line\n\nsecond line\nthird line\nfourth line\n  \nfifth line\n", encoding="utf-8")
    splits, detected = load_table(path, DataConfig())
    texts = sorted(list(splits["train"]["text"]) + list(splits["validation"]["text"]))
    assert detected.kind == "text" and detected.file_format == "text"
    assert texts == ["fifth line", "first line", "fourth line", "second line", "third line"]


def test_txt_reads_paragraphs_when_blank_lines_separate_blocks(tmp_path):
    path = tmp_path / "paragraphs.txt"
    path.write_text("\n\n".join(f"paragraph {i}\ncontinues here" for i in range(5)), encoding="utf-8")
    splits, _ = load_table(path, DataConfig())
    texts = sorted(list(splits["train"]["text"]) + list(splits["validation"]["text"]))
    assert texts == [f"paragraph {i}\ncontinues here" for i in range(5)]


@pytest.mark.parametrize(
    "content",
    [{"data": pairs()}, {"prompt": [f"p{i}" for i in range(10)], "response": [f"r{i}" for i in range(10)]}],
    ids=["wrapped-records", "column-lists"],
)
def test_json_accepts_wrapped_records_and_column_lists(tmp_path, content):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    _, detected = load_table(path, DataConfig())
    assert (detected.kind, detected.num_train + detected.num_validation) == ("prompt/response", 10)


def test_json_lines_in_a_json_file_are_read_as_jsonl(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("".join(json.dumps(row) + "\n" for row in pairs()), encoding="utf-8")
    _, detected = load_table(path, DataConfig())
    assert detected.num_train + detected.num_validation == 10


def test_rows_with_missing_values_are_dropped_and_reported(tmp_path):
    rows = pairs(12)
    rows[3]["response"], rows[7]["response"] = None, "   "
    splits, detected = load_table(write(tmp_path / "d.jsonl", rows), DataConfig())
    assert detected.dropped_rows == {"response": 2}
    assert detected.num_train + detected.num_validation == 10
    assert "dropped 2 rows with no response" in detected.description
    assert "answer 3" not in list(splits["train"]["response"]) + list(splits["validation"]["response"])


def test_missing_optional_input_becomes_empty_string(tmp_path):
    rows = [{"instruction": f"i{n}", "output": f"o{n}", **({"input": "extra"} if n == 0 else {})} for n in range(6)]
    splits, _ = load_table(write(tmp_path / "d.jsonl", rows), DataConfig(validation_fraction=0.5))
    inputs = list(splits["train"]["input"]) + list(splits["validation"]["input"])
    assert sorted(inputs) == ["", "", "", "", "", "extra"]


# ---------------------------------------------------------------- bad input

BAD_INPUTS = [
    ("empty.csv", b"", {}, "is empty"),
    ("blank.jsonl", b"  \n\n ", {}, "is empty"),
    ("header.csv", b"prompt,response\n", {}, "no data rows"),
    ("cols.csv", b"foo,bar\n1,2\n3,4\n5,6\n7,8\n", {}, "unknown columns in cols.csv: found foo, bar"),
    ("cols2.csv", b"foo,bar\n1,2\n", {}, "prompt + response; instruction + output (optional input)"),
    ("task.csv", b"prompt,response\na,b\nc,d\ne,f\ng,h\n", {"task": "classification"}, "set task='causal-lm'"),
    ("blank_col.csv", b"prompt,response\na,\nb,\nc,\nd,\n", {}, "'response' in blank_col.csv has no value in any"),
    ("latin1.csv", "prompt,response\nhi,there\ncaf\u00e9,x\n".encode("latin-1"), {},
     "not valid UTF-8 (byte 0xe9 on line 3)"),
    ("utf16.csv", "prompt,response\na,b\n".encode("utf-16"), {}, "UTF-16"),
    ("bad.jsonl", b'{"prompt": "a", "response": "b"}\n{"prompt": "c", "response": "d"}\n{"prompt": "e",\n', {},
     "bad.jsonl line 3 is not valid JSON"),
    ("list.jsonl", b'{"prompt": "a", "response": "b"}\n[1, 2]\n', {}, "line 2 holds a list, not a JSON object"),
    ("bad.json", b'[{"prompt": "a", "response": "b"},\n {"prompt": }]', {},
     "is not valid JSON (Expecting value at line 2"),
    ("scalar.json", b'"just a string"', {}, "must hold a list of objects"),
    ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", {}, "looks like a binary file"),
    ("fake.parquet", b"prompt,response\na,b\n", {}, "not a Parquet file"),
    ("ragged.csv", b"prompt,response\na,b\nc,d,e,f\ng,h\n", {}, "could not read ragged.csv as CSV"),
    ("one.csv", b"text,label\na,pos\nb,pos\nc,pos\nd,pos\n", {"task": "classification"}, "only one class ('pos')"),
    ("few.csv", b"prompt,response\na,b\nc,d\ne,f\n", {}, "only 3 usable rows, too few to split"),
    ("big.csv", b"prompt,response\n" + b"aaaa,bbbb\n" * 20, {"max_file_bytes": 100},
     "is 216 bytes, over the 100 bytes limit"),
    ("data.xlsx", b"PK\x03\x04", {}, "unsupported file extension '.xlsx'"),
    ("msgs.jsonl", b'{"messages": [{"role": "user"}]}\n', {}, "has a message that is not a list of objects"),
    ("split.csv", b"prompt,response,part\na,b,train\nc,d,holdout\n", {"split_column": "part"}, "is 'holdout'; use one"),
    ("nosplit.csv", b"prompt,response\na,b\n", {"split_column": "fold"}, "column 'fold' not found in nosplit.csv"),
    ("allval.csv", b"prompt,response,split\na,b,val\nc,d,dev\n", {"split_column": "split"}, "marks no train rows"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "options", "phrase"), BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_raises_a_data_error_that_says_what_is_wrong(tmp_path, name, content, options, phrase):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        load_table(path, DataConfig(**options))
    assert phrase in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nowhere.csv", DataConfig())


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        ({"task": "seq2seq"}, "task must be one of"),
        ({"validation_fraction": 0.0}, "validation_fraction must be in (0, 0.5]"),
        ({"max_length": 2}, "max_length must be an integer >= 8"),
        ({"max_rows": 1}, "max_rows must be None or an integer >= 4"),
        ({"max_file_bytes": 0}, "max_file_bytes must be a positive integer"),
    ],
)
def test_data_config_validates_its_fields(options, phrase):
    with pytest.raises(DataError) as caught:
        DataConfig(**options)
    assert phrase in str(caught.value)


# ---------------------------------------------------------------- splitting


def test_seeded_split_is_reproducible_and_depends_on_the_seed(tmp_path):
    path = write(tmp_path / "d.csv", pairs(40))
    first, _ = load_table(path, DataConfig(seed=3, validation_fraction=0.25))
    again, detected = load_table(path, DataConfig(seed=3, validation_fraction=0.25))
    other, _ = load_table(path, DataConfig(seed=4, validation_fraction=0.25))
    assert first["validation"]["prompt"] == again["validation"]["prompt"]
    assert first["validation"]["prompt"] != other["validation"]["prompt"]
    assert (detected.num_train, detected.num_validation) == (30, 10)
    assert set(first["train"]["prompt"]).isdisjoint(first["validation"]["prompt"])


def test_split_column_chooses_each_rows_split(tmp_path):
    rows = [{**row, "Split": ["train", "Validation", "TRAIN", "dev"][index % 4]} for index, row in enumerate(pairs(8))]
    splits, detected = load_table(write(tmp_path / "d.csv", rows), DataConfig(split_column="split"))
    assert list(splits["validation"]["prompt"]) == ["question 1", "question 3", "question 5", "question 7"]
    assert list(splits["train"]["prompt"]) == ["question 0", "question 2", "question 4", "question 6"]
    assert "Split" not in detected.ignored_columns and splits["train"].column_names == ["prompt", "response"]


def test_validation_file_is_used_as_the_validation_split(tmp_path):
    train = write(tmp_path / "train.csv", pairs(6))
    validation = write(tmp_path / "val.jsonl", [{"prompt": "held", "response": "out"}, {"prompt": "no answer"}])
    splits, detected = load_table(train, DataConfig(), validation_path=validation)
    assert (detected.num_train, detected.num_validation) == (6, 1)
    assert list(splits["validation"]["prompt"]) == ["held"]
    assert detected.dropped_rows == {"response": 1}
    assert json.loads(json.dumps(detected.to_dict()))["kind"] == "prompt/response"


def test_validation_file_must_match_the_training_columns(tmp_path):
    train = write(tmp_path / "train.csv", pairs(6))
    validation = write(tmp_path / "val.jsonl", [{"text": "just text"}])
    with pytest.raises(DataError, match="holds text data but train.csv holds prompt/response"):
        load_table(train, DataConfig(), validation_path=validation)


def test_validation_labels_must_occur_in_training(tmp_path):
    train = write(tmp_path / "train.csv", [{"text": f"t{i}", "label": ["a", "b"][i % 2]} for i in range(6)])
    validation = write(tmp_path / "val.csv", [{"text": "v", "label": "c"}])
    with pytest.raises(DataError, match="validation labels c never occur"):
        load_table(train, DataConfig(task="classification"), validation_path=validation)


def test_max_rows_caps_the_rows_used(tmp_path):
    _, detected = load_table(write(tmp_path / "d.csv", pairs(30)), DataConfig(max_rows=10))
    assert detected.num_train + detected.num_validation == 10


# ---------------------------------------------------------------- bundled samples


@pytest.mark.parametrize(
    ("name", "task", "kind", "rows"),
    [
        ("restaurants_e2e.csv", "causal-lm", "prompt/response", 300),
        ("pirate_style.jsonl", "causal-lm", "instruction/input/output", 200),
        ("sentiment.csv", "classification", "text/label", 300),
    ],
)
def test_bundled_samples_load_with_the_expected_format(name, task, kind, rows):
    path = SAMPLES / name
    assert path.stat().st_size < 200_000
    splits, detected = load_table(path, DataConfig(task=task))
    assert isinstance(detected, DetectedFormat)
    assert detected.kind == kind and detected.dropped_rows == {}
    assert detected.num_train + detected.num_validation == rows
    if task == "classification":
        assert detected.labels == ["negative", "positive"]
    else:
        tokenized, dropped = tokenize_dataset(splits, detected, build_tokenizer(chat=True), DataConfig(task=task))
        assert dropped == {"train": 0, "validation": 0}
        assert tokenized["train"].num_rows == detected.num_train


def test_pirate_sample_answers_start_with_arr():
    splits, _ = load_table(SAMPLES / "pirate_style.jsonl", DataConfig())
    assert all(output.startswith("Arr! ") for output in list(splits["train"]["output"]))
