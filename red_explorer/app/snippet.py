"""The copy-paste Python that applies an exported edits zip: with red_explorer, and for RED without it."""

from __future__ import annotations

from pathlib import Path

from red_explorer.models.loading import DEFAULT_CAUSAL_HUB_ID, DEFAULT_ENCODER_HUB_ID

DEFAULT_PROMPT = "Describe a coffee shop by the river."


def _hub_name(spec: str, task: str) -> str:
    if spec == "default":
        return DEFAULT_ENCODER_HUB_ID if task == "classification" else DEFAULT_CAUSAL_HUB_ID
    return DEFAULT_ENCODER_HUB_ID if spec == "minilm" else spec


LIBRARY_SNIPPET = """\
# Apply {zip_name} ({label}) to its base model with red_explorer (pip install red-explorer, or . from a clone).
import zipfile

from red_explorer import load_method, load_model
from red_explorer.engine.generation import chat_prompt

zipfile.ZipFile("{zip_name}").extractall("{folder}")
loaded = load_model({spec!r}, task={task!r}{labels})
model, spec = load_method(loaded.model, "{folder}")
print("loaded", spec.label)
"""

GENERATE_SNIPPET = """
prompt = chat_prompt(loaded.tokenizer, {prompt!r})  # rendered as in training
batch = loaded.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(loaded.device)
output = model.generate(**batch, max_new_tokens=32, do_sample=False)
print(loaded.tokenizer.decode(output[0, batch["input_ids"].shape[1] :], skip_special_tokens=True))
"""

CLASSIFY_SNIPPET = """
batch = loaded.tokenizer({prompt!r}, return_tensors="pt").to(loaded.device)
print("predicted label:", model(**batch).logits.argmax(-1).item())
"""

PLAIN_SNIPPET = """
# The same without red_explorer: RED is h' = scale * h + bias on the output of each edited module.
import torch
from safetensors.torch import load_file
from transformers import {auto_class}

base_source = loaded.model.name_or_path  # the base's folder here; elsewhere its hub id: {hub!r}
plain = {auto_class}.from_pretrained(base_source{labels_kwarg}).to(loaded.device).eval()
vectors = load_file("{folder}/edits.safetensors")


def red_hook(module, inputs, output, scale=None, bias=None):
    if scale is not None:
        output = output * scale.to(output.dtype)
    return output if bias is None else output + bias.to(output.dtype)


for name, module in plain.named_modules():
    scale, bias = vectors.get(name + ".red_scale"), vectors.get(name + ".red_bias")
    if scale is not None or bias is not None:
        module.register_forward_hook(lambda m, i, o, s=scale, b=bias: red_hook(m, i, o, s, b))
"""

PLAIN_CHECK = """
with torch.no_grad():
    print("same logits without red_explorer:", torch.allclose(plain(**batch).logits, model(**batch).logits, atol=1e-4))
"""


def python_snippet(
    zip_name: str, label: str, method: str, spec: str, task: str, num_labels: int | None, prompt: str = DEFAULT_PROMPT
) -> str:
    """Copy-paste Python that unpacks ``zip_name`` and applies it; RED also gets a plain-transformers version."""
    folder = Path(zip_name).stem
    labels = f", num_labels={num_labels}" if task == "classification" and num_labels else ""
    text = LIBRARY_SNIPPET.format(zip_name=zip_name, label=label, folder=folder, spec=spec, task=task, labels=labels)
    example = CLASSIFY_SNIPPET if task == "classification" else GENERATE_SNIPPET
    text += example.format(prompt=prompt)
    if method == "red":
        auto_class = "AutoModelForSequenceClassification" if task == "classification" else "AutoModelForCausalLM"
        text += PLAIN_SNIPPET.format(
            auto_class=auto_class, hub=_hub_name(spec, task), folder=folder, labels_kwarg=labels
        )
        if task == "classification":
            text += "# (the trained classification head is in the same file: copy it into plain's head.)\n"
        else:
            text += PLAIN_CHECK
    return text
