"""Text a user chose (a run label, a group, a model name), shown as itself wherever Markdown or HTML renders it."""

from __future__ import annotations

ACTIVE = set("\\`*_[]<>&!#|~$")  # what Markdown or HTML would act on: emphasis, code, links, images, tags, tables, math


def plain(text: object) -> str:
    """``text`` with every character Markdown or HTML acts on written as a character reference (``*`` → ``&#42;``).

    Both render the references as the characters themselves, so a label reads as typed and never becomes an image,
    a link, a tag or bold text.
    """
    return "".join(f"&#{ord(char)};" if char in ACTIVE else char for char in str(text))
