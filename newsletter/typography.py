"""Typography rules of the reader's language, applied to finished text and HTML.

French puts a narrow no-break space before `: ; ! ?` and inside « », and a no-break space
between a number and its unit, so a line never starts with a colon or a lone unit. Only
words a reader sees are changed: never tags, attributes, URLs, entities, code or styles. Other
languages keep their own rules (none are applied). Running a rule twice changes nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Callable

NNBSP = "\u202f"  # narrow no-break space
NBSP = "\u00a0"
SPACES = f" {NBSP}{NNBSP}"

# Left as they are inside a text: URLs, e-mail addresses, HTML entities, times like 10:30.
PROTECTED = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://|mailto:|www\.)[^\s<>\"]*[^\s<>\".,;:!?)»]"
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    r"|&#?\w+;",
    re.IGNORECASE,
)
PROTECTED_MARKS = ("://", "mailto:", "@", "&", "www.")  # one is in every PROTECTED match
# A run of ; ! ? : after a word or closing mark, then a space or the end: "Titre : suite".
HIGH_PUNCTUATION = re.compile(rf"(?<=[^\s])[{SPACES}]?([;!?:]+)(?=[\s)\]»\"”’<]|$)")
# A run that starts the text after a space ("» ?" in a new node keeps its own space).
LEADING = re.compile(rf"^[{SPACES}]([;!?:]+)(?=\s|$)")
OPEN_QUOTE = re.compile(rf"«[{SPACES}]*")
CLOSE_QUOTE = re.compile(rf"[{SPACES}]*»")
THOUSANDS = re.compile(rf"(?<=\d)[ {NBSP}](?=\d{{3}}(?!\d))")
UNITS = ("km", "m", "cm", "mm", "kg", "g", "t", "l", "L", "ml", "h", "min", "s", "ha", "km²",
         "m²", "m³", "%", "€", "$", "£", "°C", "°", "Mo", "Go", "ko", "Mb", "Gb", "kWh", "MW",
         "W", "V", "personnes", "ans", "jours", "mois", "euros", "dollars")
NUMERO = re.compile(r"(?<=[nN]°) (?=\d)")  # "n° 11" stays on one line
UNIT = re.compile(r"(?<=\d) (?=(?:" + "|".join(map(re.escape, UNITS)) + r")(?![\w]))")

# HTML: comments, tags, and elements whose content is not prose.
HTML_TOKEN = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<[^>]*>", re.DOTALL)
RAW_ELEMENTS = ("style", "script", "code", "pre", "kbd", "samp", "textarea")
OPENING = re.compile(r"<\s*([a-zA-Z][\w-]*)")
CLOSING = re.compile(r"<\s*/\s*([a-zA-Z][\w-]*)")


def _french_words(text: str) -> str:
    text = HIGH_PUNCTUATION.sub(lambda m: NNBSP + m.group(1), text)
    text = LEADING.sub(lambda m: NNBSP + m.group(1), text)
    text = OPEN_QUOTE.sub("«" + NNBSP, text)
    text = CLOSE_QUOTE.sub(NNBSP + "»", text)
    text = THOUSANDS.sub(NNBSP, text)
    return NUMERO.sub(NBSP, UNIT.sub(NBSP, text))


def _outside_protected(text: str, rule: Callable[[str], str]) -> str:
    """Apply a rule to the parts of a text that are not URLs, addresses or entities."""
    if not any(mark in text for mark in PROTECTED_MARKS):
        return rule(text)  # the common case, without scanning every word for a URL
    out, last = [], 0
    for match in PROTECTED.finditer(text):
        out += [rule(text[last:match.start()]), match.group(0)]
        last = match.end()
    out.append(rule(text[last:]))
    return "".join(out)


def french_text(text: str) -> str:
    """French typography in plain text (the text part, a name, a subject)."""
    return "\n".join(_outside_protected(line, _french_words) for line in text.split("\n"))


def french_html(markup: str) -> str:
    """French typography in the text between HTML tags, outside code, styles and scripts."""
    out, last, raw = [], 0, ""
    for match in HTML_TOKEN.finditer(markup):
        chunk = markup[last:match.start()]
        out += [chunk if raw else french_text(chunk), match.group(0)]
        last = match.end()
        tag = match.group(0)
        if raw:
            closing = CLOSING.match(tag)
            if closing and closing.group(1).lower() == raw:
                raw = ""
        else:
            opening = OPENING.match(tag)
            if opening and opening.group(1).lower() in RAW_ELEMENTS and not tag.endswith("/>"):
                raw = opening.group(1).lower()
    tail = markup[last:]
    out.append(tail if raw else french_text(tail))
    return "".join(out)


def for_language(language: str) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """(text rule, HTML rule) of a language; unchanged text for languages without rules."""
    if language.lower().split("-")[0] == "fr":
        return french_text, french_html
    return _same, _same


def _same(text: str) -> str:
    return text


def typeset_text(text: str, language: str) -> str:
    """Plain text with the typography of a language."""
    return for_language(language)[0](text)


def typeset_html(markup: str, language: str) -> str:
    """HTML with the typography of a language in its visible text."""
    return for_language(language)[1](markup)
