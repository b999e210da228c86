"""Rows as the model sees them: chat templates or plain turns, the prompt of a row, and typed prompts."""

from __future__ import annotations

from typing import Any

from red_explorer.data.formats import DataError, DetectedFormat


def uses_template(tokenizer: Any, detected: DetectedFormat) -> bool:
    return detected.kind != "text" and bool(getattr(tokenizer, "chat_template", None))


def bos_prefix(tokenizer: Any) -> list[int]:
    """[bos] when the tokenizer itself starts sequences with it (Llama-style), else []."""
    bos = getattr(tokenizer, "bos_token_id", None)
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    return [bos] if bos is not None and probe and probe[0] == bos else []


def eos_id(tokenizer: Any) -> int:
    if tokenizer.eos_token_id is None:
        raise DataError("the tokenizer has no eos_token, so responses cannot end; set tokenizer.eos_token")
    return tokenizer.eos_token_id


def _conversation(example: dict[str, Any], kind: str) -> tuple[list[dict[str, str]], str]:
    """The turns before the reply to learn, and that reply."""
    if kind == "messages":
        messages = example["messages"]
        last = max(index for index, message in enumerate(messages) if message["role"] == "assistant")
        return [dict(message) for message in messages[:last]], messages[last]["content"]
    if kind == "prompt/response":
        user, reply = example["prompt"], example["response"]
    elif kind == "question/answer":
        user, reply = example["question"], example["answer"]
    else:
        extra = example.get("input") or ""
        user, reply = (f"{example['instruction']}\n\n{extra}" if extra else example["instruction"]), example["output"]
    return [{"role": "user", "content": user}], reply


def render_example(
    example: dict[str, Any], detected: DetectedFormat, tokenizer: Any, templated: bool
) -> tuple[str, str]:
    """(prompt, completion) strings; with a chat template the completion includes its end-of-turn text."""
    if detected.kind == "text":
        return "", example["text"]
    turns, reply = _conversation(example, detected.kind)
    prompt = _render_turns(turns, detected.kind, tokenizer, templated)
    if not templated:
        return prompt, reply
    full = tokenizer.apply_chat_template([*turns, {"role": "assistant", "content": reply}], tokenize=False)
    if not full.startswith(prompt):
        raise DataError(
            "the tokenizer's chat template renders the prompt differently inside the full conversation, so the "
            "response cannot be located; remove tokenizer.chat_template to use the plain 'prompt\\n' format"
        )
    return prompt, full[len(prompt) :]


def _render_turns(turns: list[dict[str, str]], kind: str, tokenizer: Any, templated: bool) -> str:
    """The prompt before the reply: the chat template with a generation prompt, or the plain turns."""
    if templated:
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    return "".join(_plain_turn(turn, kind) for turn in turns)


def _plain_turn(turn: dict[str, str], kind: str) -> str:
    """Without a chat template: 'prompt\\n' for single-turn kinds, 'role: content\\n' for conversations."""
    return f"{turn['role']}: {turn['content']}\n" if kind == "messages" else f"{turn['content']}\n"


# ---------------------------------------------------------------- generation prompts and references


def prompt_text(example: dict[str, Any], detected: DetectedFormat, tokenizer: Any) -> str:
    """The text a generation should continue: chat-templated with a generation prompt when the tokenizer has a
    template; the first half of a plain text; the input text for classification."""
    if detected.kind == "sentence pair/label":
        return f"{example['sentence1']}\n{example['sentence2']}"
    if detected.kind in ("text", "text/label"):
        words = example["text"].split()
        return example["text"] if detected.task == "classification" else " ".join(words[: max(1, len(words) // 2)])
    return render_example(example, detected, tokenizer, uses_template(tokenizer, detected))[0]


def render_prompt(tokenizer: Any, text: str) -> str:
    """A typed prompt exactly as training renders the prompt of {"prompt": text, "response": ...}: the chat
    template with a generation prompt when the tokenizer has one, else 'text\\n' (the plain format)."""
    templated = bool(getattr(tokenizer, "chat_template", None))
    return _render_turns([{"role": "user", "content": text}], "prompt/response", tokenizer, templated)


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a rendered prompt as training tokenises it: the BOS the plain format adds when the tokenizer
    has no chat template (a template writes its own), then the text; never an EOS."""
    prefix = [] if getattr(tokenizer, "chat_template", None) else bos_prefix(tokenizer)
    return prefix + list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def prompt_token_ids(example: dict[str, Any], detected: DetectedFormat, tokenizer: Any) -> list[int]:
    """The token ids of prompt_text exactly as training saw them (with the BOS the plain format adds)."""
    prefix = [] if uses_template(tokenizer, detected) else bos_prefix(tokenizer)
    return prefix + list(tokenizer(prompt_text(example, detected, tokenizer), add_special_tokens=False)["input_ids"])


def reference_text(example: dict[str, Any], detected: DetectedFormat) -> str | None:
    """The expected output for `example`: its response, the label name, or the second half of a plain text."""
    if detected.task == "classification":
        return str(example["label"])
    if detected.kind == "text":
        words = example["text"].split()
        return " ".join(words[max(1, len(words) // 2) :]) or None
    return _conversation(example, detected.kind)[1]
