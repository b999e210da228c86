"""Reading control-vector GGUF files: every malformed or hostile file is one ValueError that says what is wrong."""

import struct

import gguf
import numpy as np
import pytest
import torch

from red_explorer.explore.gguf_file import MAX_MAGNITUDE, ControlVectorFile, read_control_vector, write_control_vector


@pytest.fixture
def good(tmp_path) -> bytes:
    directions = {layer: torch.full((8,), float(layer)) for layer in (1, 2, 3)}
    return write_control_vector(tmp_path / "good.gguf", ControlVectorFile("llama", directions)).read_bytes()


def write(tmp_path, data: bytes, name: str = "bad.gguf"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_the_good_file_reads_back(tmp_path, good):
    vector = read_control_vector(write(tmp_path, good))
    assert sorted(vector.directions) == [1, 2, 3] and vector.model_hint == "llama" and vector.layer_count == 3
    assert torch.equal(vector.directions[2], torch.full((8,), 2.0))


def test_every_truncation_is_one_clear_value_error(tmp_path, good):
    for length in range(len(good)):
        with pytest.raises(ValueError, match=r"is not a (readable )?GGUF file") as caught:
            read_control_vector(write(tmp_path, good[:length]))
        assert type(caught.value) is ValueError and "\n" not in str(caught.value), length


@pytest.mark.parametrize(("offset", "what"), [(8, "tensors"), (16, "metadata keys")])
def test_counts_past_the_file_are_refused_before_reading(tmp_path, good, offset, what):
    hostile = good[:offset] + struct.pack("<Q", 2**40) + good[offset + 8 :]
    with pytest.raises(ValueError, match=f"declares {2**40} {what}, more than its {len(good)} bytes can hold"):
        read_control_vector(write(tmp_path, hostile))


@pytest.mark.parametrize("text", [b"general.architecture", b"llama", b"direction.2"])
def test_a_string_length_of_2_to_the_62_is_refused(tmp_path, good, text):
    start = good.index(text)
    assert struct.unpack("<Q", good[start - 8 : start])[0] == len(text)
    hostile = good[: start - 8] + struct.pack("<Q", 2**62) + good[start:]
    with pytest.raises(ValueError, match="is not a readable GGUF file: it is truncated or malformed") as caught:
        read_control_vector(write(tmp_path, hostile))
    assert type(caught.value) is ValueError


def written(path, tensors: dict[str, np.ndarray]):
    """A GGUF written by the gguf package itself, with any tensor names and values."""
    writer = gguf.GGUFWriter(str(path), "controlvector")
    for name, values in tensors.items():
        writer.add_tensor(name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_non_ascii_digit_is_not_a_layer(tmp_path):
    path = written(tmp_path / "arabic.gguf", {"direction.\u0661": np.ones(8, dtype=np.float32)})  # ARABIC-INDIC ONE
    with pytest.raises(ValueError, match="is not named direction.N"):
        read_control_vector(path)


@pytest.mark.parametrize(("value", "message"), [(3e38, "holds a value of 3e\\+38, past the ±10000"), (np.inf, "NaN")])
def test_values_past_the_magnitude_bound_or_not_finite_are_refused(tmp_path, good, value, message):
    start = good.index(np.full(8, 2.0, dtype=np.float32).tobytes())
    hostile = good[:start] + np.full(8, value, dtype=np.float32).tobytes() + good[start + 32 :]
    with pytest.raises(ValueError, match=message):
        read_control_vector(write(tmp_path, hostile))
    assert MAX_MAGNITUDE == 1e4


def test_a_quantized_or_half_precision_direction_is_refused_by_type(tmp_path):
    path = written(tmp_path / "half.gguf", {"direction.1": np.ones(8, dtype=np.float16)})
    with pytest.raises(ValueError, match="direction.1 must be a 1-D F32 tensor"):
        read_control_vector(path)
