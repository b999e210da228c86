"""Write the bundled sample datasets in red_explorer/samples/ from seeded templates (deterministic)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "red_explorer" / "samples"

# ---------------------------------------------------------------- restaurants (E2E-style data-to-text)

# fmt: off
NAMES = [
    "The Eagle", "The Golden Curry", "Blue Spice", "The Mill", "Aromi", "The Punter", "Giraffe", "Zizzi",
    "The Phoenix", "Cotto", "Fitzbillies", "The Wrestlers", "Green Man", "The Vaults", "Alimentum",
    "Strada", "The Cricketers", "Browns Cambridge", "Loch Fyne", "The Dumpling Tree", "Midsummer House",
    "Clowns", "The Olive Grove", "Taste of Cambridge", "Bibimbap House", "The Rice Boat", "Wildwood",
]
NEAR = [
    "Burger King", "Café Rouge", "The Bakers", "Raja Indian Cuisine", "Crowne Plaza Hotel", "Yippee Noodle Bar",
    "All Bar One", "Café Sicilia", "The Portland Arms", "Express by Holiday Inn", "Rainbow Vegetarian Café",
]
EAT_TYPES = ["restaurant", "coffee shop", "pub"]
FOODS = ["Italian", "French", "Chinese", "Japanese", "Indian", "English", "Fast food"]
PRICES = {
    "cheap": ["cheap", "low-priced", "inexpensive"],
    "moderate": ["moderately priced", "mid-priced", "reasonably priced"],
    "high": ["expensive", "high-priced", "pricey"],
    "less than £20": ["cheap, with meals under £20", "budget-friendly, under £20 a head"],
    "£20-25": ["priced at £20-25", "in the £20-25 price range"],
    "more than £30": ["pricey, at more than £30 a head", "in the over £30 price range"],
}
# fmt: on
RATINGS = ["low", "average", "high", "1 out of 5", "3 out of 5", "5 out of 5"]
AREAS = {"riverside": ["by the riverside", "on the riverside"], "city centre": ["in the city centre", "in the centre"]}


def _meaning(rng: random.Random) -> dict[str, str]:
    mr = {"name": rng.choice(NAMES)}
    optional = {
        "eatType": lambda: rng.choice(EAT_TYPES),
        "food": lambda: rng.choice(FOODS),
        "priceRange": lambda: rng.choice(list(PRICES)),
        "customer rating": lambda: rng.choice(RATINGS),
        "area": lambda: rng.choice(list(AREAS)),
        "familyFriendly": lambda: rng.choice(["yes", "no"]),
        "near": lambda: rng.choice(NEAR),
    }
    for key in rng.sample(list(optional), rng.randint(2, len(optional))):
        mr[key] = optional[key]()
    return {key: mr[key] for key in ["name", *optional] if key in mr}


def _clauses(mr: dict[str, str], rng: random.Random) -> list[str]:
    clauses = []
    if "food" in mr:
        food = "fast food" if mr["food"] == "Fast food" else f"{mr['food']} food"
        clauses.append(rng.choice([f"serves {food}", f"offers {food}", f"specialises in {food}"]))
    if "priceRange" in mr:
        clauses.append(f"is {rng.choice(PRICES[mr['priceRange']])}")
    if "customer rating" in mr:
        rating = mr["customer rating"]
        clauses.append(rng.choice([f"has a {rating} customer rating", f"is rated {rating} by customers"]))
    if "familyFriendly" in mr:
        yes = mr["familyFriendly"] == "yes"
        clauses.append(
            rng.choice(["is family-friendly", "welcomes children"])
            if yes
            else rng.choice(["is not family-friendly", "is not suitable for children"])
        )
    rng.shuffle(clauses)
    return clauses


def _join(clauses: list[str]) -> str:
    if len(clauses) <= 1:
        return "".join(clauses)
    return ", ".join(clauses[:-1]) + " and " + clauses[-1]


def _realise(mr: dict[str, str], rng: random.Random) -> str:
    place = mr.get("eatType", "venue")
    area = rng.choice(AREAS[mr["area"]]) if "area" in mr else ""
    where = " ".join(part for part in (area, f"near {mr['near']}" if "near" in mr else "") if part)
    clauses = _clauses(mr, rng)
    style = rng.randrange(3)
    if where and style == 2:
        head = f"Located {where}, {mr['name']} is a {place}"
    else:
        head = f"{mr['name']} is a {place}" + (f" {where}" if where else "")
    if not clauses:
        return head + "."
    if style == 1 and len(clauses) >= 2:
        return f"{head}. It {_join(clauses)}."
    return f"{head} that {_join(clauses)}."


def restaurants(rng: random.Random, rows: int = 300) -> list[dict[str, str]]:
    examples = []
    for _ in range(rows):
        mr = _meaning(rng)
        prompt = " | ".join(f"{key}[{value}]" for key, value in mr.items())
        examples.append({"prompt": prompt, "response": _realise(mr, rng)})
    return examples


# ---------------------------------------------------------------- pirate-speak instructions

# fmt: off
CAPITALS = {
    "France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Germany": "Berlin", "Japan": "Tokyo",
    "Egypt": "Cairo", "Canada": "Ottawa", "Peru": "Lima", "Norway": "Oslo", "Kenya": "Nairobi",
    "Portugal": "Lisbon", "Greece": "Athens", "Ireland": "Dublin", "Cuba": "Havana", "Jamaica": "Kingston",
    "Australia": "Canberra", "Chile": "Santiago", "Poland": "Warsaw", "Austria": "Vienna", "Sweden": "Stockholm",
}
SOUNDS = {
    "cow": "moo", "dog": "woof", "cat": "meow", "duck": "quack", "sheep": "baa", "owl": "hoot", "parrot": "squawk",
}
OPPOSITES = {
    "hot": "cold", "up": "down", "fast": "slow", "happy": "sad", "big": "small", "light": "dark",
    "wet": "dry", "early": "late", "full": "empty", "loud": "quiet", "rich": "poor", "open": "closed",
}
PLURALS = {"ship": "ships", "chest": "chests", "parrot": "parrots", "island": "islands", "coin": "coins",
           "sword": "swords", "map": "maps", "wave": "waves", "sailor": "sailors", "cannon": "cannons"}
COLOURS = {"the sky": "blue", "grass": "green", "a banana": "yellow", "snow": "white", "coal": "black",
           "a ripe tomato": "red", "an orange": "orange", "the sea on a clear day": "deep blue"}
# fmt: on
CALLS = ["matey", "me hearty", "ye landlubber", "me bucko", "shipmate"]
ENDINGS = ["Yo ho ho!", "Savvy?", "Shiver me timbers!", "Now hoist the sails!", "Fair winds to ye!", ""]


def _pirate(answer: str, rng: random.Random) -> str:
    ending = rng.choice(ENDINGS)
    return f"Arr! {answer}, {rng.choice(CALLS)}!" + (f" {ending}" if ending else "")


def _pirate_question(rng: random.Random) -> dict[str, str]:
    topic = rng.randrange(6)
    if topic == 0:
        country = rng.choice(list(CAPITALS))
        return {
            "instruction": f"What is the capital of {country}?",
            "output": _pirate(f"The capital o' {country} be {CAPITALS[country]}", rng),
        }
    if topic == 1:
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        word, value = rng.choice([("plus", a + b), ("times", a * b)])
        return {"instruction": f"What is {a} {word} {b}?", "output": _pirate(f"{a} {word} {b} be {value}", rng)}
    if topic == 2:
        animal = rng.choice(list(SOUNDS))
        return {
            "instruction": f"What sound does a {animal} make?",
            "output": _pirate(f"A {animal} goes '{SOUNDS[animal]}', loud as a cannon on the main deck", rng),
        }
    if topic == 3:
        word = rng.choice(list(OPPOSITES))
        return {
            "instruction": f"What is the opposite of '{word}'?",
            "output": _pirate(f"The opposite o' {word} be {OPPOSITES[word]}", rng),
        }
    if topic == 4:
        thing = rng.choice(list(COLOURS))
        return {
            "instruction": f"What colour is {thing}?",
            "output": _pirate(f"{thing[0].upper() + thing[1:]} be {COLOURS[thing]}, as sure as the tides", rng),
        }
    word = rng.choice(list(PLURALS))
    return {
        "instruction": "Give the plural of this word.",
        "input": word,
        "output": _pirate(f"More than one {word} be {PLURALS[word]}", rng),
    }


def pirate(rng: random.Random, rows: int = 200) -> list[dict[str, str]]:
    examples, seen = [], set()
    while len(examples) < rows:
        example = _pirate_question(rng)
        key = (example["instruction"], example.get("input", ""))
        if key in seen and rng.random() < 0.8:  # mostly distinct questions, a few repeats with new wording
            continue
        seen.add(key)
        examples.append(example)
    return examples


# ---------------------------------------------------------------- sentiment (text/label)

# fmt: off
SUBJECTS = ["the film", "the movie", "the acting", "the plot", "the soundtrack", "the ending", "the meal",
            "the service", "the pasta", "the dessert", "the staff", "the atmosphere", "the soup", "the script"]
# fmt: on
POSITIVE = ["wonderful", "delightful", "excellent", "brilliant", "superb", "lovely", "fantastic", "charming"]
NEGATIVE = ["awful", "terrible", "dreadful", "boring", "bland", "disappointing", "horrible", "dull"]
POSITIVE_VERBS = ["loved", "enjoyed", "adored", "really liked"]
NEGATIVE_VERBS = ["hated", "disliked", "regretted", "could not stand"]
POSITIVE_TAILS = ["I would go again.", "Highly recommended.", "A real treat.", "Five stars.", ""]
NEGATIVE_TAILS = ["Never again.", "Avoid it.", "A waste of money.", "One star.", ""]


def _review(rng: random.Random, positive: bool) -> str:
    adjective = rng.choice(POSITIVE if positive else NEGATIVE)
    verb = rng.choice(POSITIVE_VERBS if positive else NEGATIVE_VERBS)
    tail = rng.choice(POSITIVE_TAILS if positive else NEGATIVE_TAILS)
    subject = rng.choice(SUBJECTS)
    sentence = rng.choice(
        [
            f"{subject.capitalize()} was {adjective}.",
            f"I {verb} {subject}.",
            f"Honestly, {subject} was {rng.choice(['quite', 'truly', 'simply'])} {adjective}.",
            f"What a {adjective} experience; I {verb} {subject}.",
        ]
    )
    return f"{sentence} {tail}".strip()


def sentiment(rng: random.Random, rows: int = 300) -> list[dict[str, str]]:
    labels = ["positive", "negative"] * (rows // 2)
    rng.shuffle(labels)
    return [{"text": _review(rng, label == "positive"), "label": label} for label in labels]


# ---------------------------------------------------------------- writing


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    SAMPLES.mkdir(parents=True, exist_ok=True)
    write_csv(SAMPLES / "restaurants_e2e.csv", restaurants(random.Random(1)))
    write_jsonl(SAMPLES / "pirate_style.jsonl", pirate(random.Random(2)))
    write_csv(SAMPLES / "sentiment.csv", sentiment(random.Random(3)))
    for path in sorted(SAMPLES.glob("*.*")):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
