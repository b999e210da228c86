"""Write red_explorer/samples/formal_register.jsonl: plain questions answered in a formal register (deterministic).

The facts come from the pirate sample's tables (scripts/make_samples.py); only the register differs: each row pairs
a plain question with a formal answer, so an edit trained on it changes how the model speaks, not what it knows.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_samples import CAPITALS, COLOURS, OPPOSITES, PLURALS, SAMPLES, SOUNDS, write_jsonl  # noqa: E402

OPENINGS = ["Certainly.", "Indeed.", "With pleasure.", "Allow me to answer.", "Of course."]
CLOSINGS = [
    "I trust this answers your enquiry.",
    "Should you require further assistance, please do not hesitate to ask.",
    "I hope this information proves useful.",
    "Please let me know if I may be of further assistance.",
]


def _formal(answer: str, rng: random.Random) -> str:
    return f"{rng.choice(OPENINGS)} {answer}. {rng.choice(CLOSINGS)}"


def _question(rng: random.Random) -> dict[str, str]:
    topic = rng.randrange(6)
    if topic == 0:
        country = rng.choice(list(CAPITALS))
        answer = f"The capital city of {country} is {CAPITALS[country]}"
        return {"instruction": f"What is the capital of {country}?", "output": _formal(answer, rng)}
    if topic == 1:
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        word, name, value = rng.choice([("plus", "sum", a + b), ("times", "product", a * b)])
        answer = f"The {name} of {a} and {b} is {value}"
        return {"instruction": f"What is {a} {word} {b}?", "output": _formal(answer, rng)}
    if topic == 2:
        animal = rng.choice(list(SOUNDS))
        answer = f"The sound a {animal} makes is customarily rendered as '{SOUNDS[animal]}'"
        return {"instruction": f"What sound does a {animal} make?", "output": _formal(answer, rng)}
    if topic == 3:
        word = rng.choice(list(OPPOSITES))
        answer = f"The antonym of '{word}' is '{OPPOSITES[word]}'"
        return {"instruction": f"What is the opposite of '{word}'?", "output": _formal(answer, rng)}
    if topic == 4:
        thing = rng.choice(list(COLOURS))
        answer = f"The colour of {thing} is {COLOURS[thing]}"
        return {"instruction": f"What colour is {thing}?", "output": _formal(answer, rng)}
    word = rng.choice(list(PLURALS))
    answer = f"The plural form of '{word}' is '{PLURALS[word]}'"
    return {"instruction": "Give the plural of this word.", "input": word, "output": _formal(answer, rng)}


def formal_register(rng: random.Random, rows: int = 150) -> list[dict[str, str]]:
    examples, seen = [], set()
    while len(examples) < rows:
        example = _question(rng)
        key = (example["instruction"], example.get("input", ""))
        if key in seen and rng.random() < 0.8:  # mostly distinct questions, as in the pirate sample
            continue
        seen.add(key)
        examples.append(example)
    return examples


def main() -> None:
    path = SAMPLES / "formal_register.jsonl"
    write_jsonl(path, formal_register(random.Random(4)))
    print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
