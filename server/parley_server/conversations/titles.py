"""Conversation titles derived from text: the heuristic, and the clean-up of model answers.

A title is shown in narrow sidebars, so whatever produced it (the user's first
message, or a model asked for a title) goes through the same rules: plain
text without markdown or quotes, the first sentence of the first non-empty line
(or its first few words), at most 60 characters cut at a word boundary, no
trailing punctuation, capitalised.
Everything here is pure so it can be table-tested and reused by ChatService.
"""

from __future__ import annotations

import re

DEFAULT_TITLE = "New conversation"
MAX_TITLE_CHARS = 60
MAX_TITLE_WORDS = 8
# What a title is derived from: enough for a first sentence, small enough to
# keep the regular expressions cheap on a 100,000-character message.
MAX_SOURCE_CHARS = 2000

_FENCED_CODE = re.compile(r"```.*?(```|$)|~~~.*?(~~~|$)", re.DOTALL)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
# Line starts: headings, block quotes, bullets, numbered items.
_LINE_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|>+\s?|[-*+]\s+|\d+[.)]\s+)+", re.MULTILINE)
_EMPHASIS = re.compile(r"[*_~`]+")
_DOUBLE_QUOTES = re.compile(r"[\"“”„«»]")
# Single quotes, unless they are apostrophes inside a word ("don't").
_SINGLE_QUOTES = re.compile(r"(?<!\w)['‘’]|['‘’](?!\w)")
# A label models like to prepend despite being told not to.
_TITLE_LABEL = re.compile(r"^\s*title\s*:\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?…](?=\s|$)")
_TRAILING = re.compile(r"[\s.,;:!?…\-–—/\\(\[{]+$")


def clean_title(text: str) -> str:
    """text reduced to a title by the rules above; empty when nothing usable is left."""
    text = text[:MAX_SOURCE_CHARS]
    text = _FENCED_CODE.sub(" ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _HTML_TAG.sub(" ", text)
    text = _LINE_MARKUP.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = _DOUBLE_QUOTES.sub("", text)
    text = _SINGLE_QUOTES.sub("", text)
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    text = _TITLE_LABEL.sub("", " ".join(first_line.split()))
    sentence_end = _SENTENCE_END.search(text)
    if sentence_end:
        text = text[: sentence_end.start()]
    text = " ".join(text.split()[:MAX_TITLE_WORDS])
    if len(text) > MAX_TITLE_CHARS:
        cut = text.rfind(" ", 0, MAX_TITLE_CHARS + 1)
        text = text[:cut] if cut > 0 else text[:MAX_TITLE_CHARS]
    text = _TRAILING.sub("", text)
    return text[:1].upper() + text[1:]


def heuristic_title(first_user_message: str) -> str:
    """The title of a conversation that starts with first_user_message."""
    return clean_title(first_user_message) or DEFAULT_TITLE
