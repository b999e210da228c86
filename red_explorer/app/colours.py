"""The plots' colours: one hue per method (RED is red) and, within it, a shade per run, the same in every plot."""

from __future__ import annotations

from collections.abc import Sequence

RED = "#c0392b"
BASE_COLOUR = "#7f8c8d"  # the base model: a grey no method uses
METHOD_SHADES = {  # per method: its colour first, then shades of the same hue for its later runs
    "red": (RED, "#78281f", "#f1948a", "#e74c3c"),
    "lora": ("#2471a3", "#154360", "#85c1e9", "#3498db"),
    "tare": ("#7d3c98", "#4a235a", "#c39bd3", "#a569bd"),
    "full": ("#566573", "#212f3d", "#aab7b8", "#839192"),
    "ia3": ("#d68910", "#7e5109", "#f8c471", "#f39c12"),
    "dora": ("#17a589", "#0b5345", "#76d7c4", "#48c9b0"),
    "lntuning": ("#1e8449", "#145a32", "#82e0aa", "#28b463"),
    "bitfit": ("#873600", "#4d2600", "#e59866", "#ba4a00"),
    "loreft": ("#e84393", "#8e1b5a", "#f8a5c2", "#c2185b"),
}
OTHER_SHADES = ("#34495e", "#1b2631", "#85929e", "#5d6d7e")  # a method the table does not name
METHOD_COLOURS = {method: shades[0] for method, shades in METHOD_SHADES.items()} | {"base": BASE_COLOUR}


def method_colour(method: str) -> str:
    """The colour of ``method`` (a registry name such as "red"; "base" for the base model) in every plot."""
    return METHOD_COLOURS.get(method.lower(), OTHER_SHADES[0])


def next_run_colour(method: str, made_before: int) -> str:
    """The colour of a ``method`` run made after ``made_before`` others of that method: its method's hue,
    a new shade for each run (a run still training gets its colour to be)."""
    shades = METHOD_SHADES.get(method.lower(), OTHER_SHADES)
    return shades[made_before % len(shades)]


def method_shades(methods: Sequence[str]) -> list[str]:
    """A colour for each of ``methods`` (one per run, line or marker, in order): its method's hue, the next shade
    of it each time the method comes again."""
    made: dict[str, int] = {}
    shades = []
    for method in methods:
        shades.append(next_run_colour(method, made.get(method, 0)))
        made[method] = made.get(method, 0) + 1
    return shades


def run_colours(runs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The fixed colour of each of an owner's runs, given as (run id, method) oldest first (``method_shades``), so
    every plot, card and table gives a run the same one."""
    return dict(zip([run_id for run_id, _ in runs], method_shades([method for _, method in runs]), strict=True))


TEXT_CONTRAST = 4.5  # the least contrast on white of a run's name written in its colour (WCAG AA for text)


def contrast_on_white(colour: str) -> float:
    """The WCAG contrast ratio of ``colour`` ('#rrggbb') on white: 1 (white) to 21 (black)."""
    channels = [int(colour[index : index + 2], 16) / 255 for index in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 1.05 / (luminance + 0.05)


def text_colour(colour: str) -> str:
    """``colour`` darkened (same hue, towards black) just enough to be read as text on white (``TEXT_CONTRAST``)."""
    red, green, blue = (int(colour[index : index + 2], 16) for index in (1, 3, 5))
    shade, factor = colour.lower(), 1.0
    while contrast_on_white(shade) < TEXT_CONTRAST:
        factor -= 0.02
        shade = "#" + "".join(f"{round(channel * factor):02x}" for channel in (red, green, blue))
    return shade
