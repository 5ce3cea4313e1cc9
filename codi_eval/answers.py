"""JSON in a model's answer: the one extractor Chain of Density, the judges and the pairwise
judge read answers with.

Models asked for JSON still wrap it in ```json fences, put prose around it, stop half-way
(max_tokens), or write single quotes, trailing commas and bare keys. :func:`json_values`
finds the JSON values an answer holds, most likely first; each caller takes the first one
with the shape it needs (a summary, a score, a winner) and decides what a missing one means.

Where it looks, in order, without duplicates: the contents of each fenced block; the whole
answer (without an opening fence left unclosed); then balanced ``{...}`` and ``[...]``
spans, outermost first, then the spans nested in them. Each snippet is decoded as JSON,
else as a Python literal (single quotes, True/None), else as JSON after light repairs
(trailing commas, bare keys, single quotes, Python constants).

The work is bounded whatever the answer: only the first :data:`MAX_SEARCH_CHARS`
characters are searched, the bracket scan is one linear pass per bracket kind, and at most
:data:`MAX_CANDIDATES` spans are decoded.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_CANDIDATES",
    "MAX_SEARCH_CHARS",
    "Decoded",
    "decode",
    "json_values",
    "snippets",
    "strip_fence",
]

# Answers are a few hundred characters; a runaway one is searched only this far.
MAX_SEARCH_CHARS = 200_000
# Bracket spans decoded at most (each decode may read the whole span).
MAX_CANDIDATES = 32

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\r?\n?(.*?)```", re.DOTALL)
_OPENING_FENCE = re.compile(r"^```[ \t]*[A-Za-z0-9_+-]*[ \t]*(?:\r?\n|$)")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_BARE_KEY = re.compile(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:")
_SINGLE_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")
_PY_CONSTANTS = {"True": "true", "False": "false", "None": "null"}
_PY_CONSTANT = re.compile(r"\b(True|False|None)\b")
_BRACKETS = (("{", "}"), ("[", "]"))


@dataclass(frozen=True)
class Decoded:
    """A JSON value found in an answer: ``how`` it was read and the ``snippet`` it came from."""

    value: Any
    how: str  # "json" | "python_literal" | "repaired_json"
    snippet: str


def strip_fence(text: str) -> str:
    """``text`` without one surrounding code fence (an unclosed opening one included)."""
    text = text.strip()
    if text.startswith("```"):
        match = _OPENING_FENCE.match(text)
        text = text[match.end() :] if match else text[3:]
    if text.endswith("```"):
        text = text[:-3]
    return text.strip()


def json_values(text: str | None) -> Iterator[Decoded]:
    """Every JSON value in ``text``, most likely first (see the module docstring); never raises."""
    if not text:
        return
    for snippet in _candidates(text):
        decoded = decode(snippet)
        if decoded is not None:
            yield Decoded(decoded[0], decoded[1], snippet)


def snippets(text: str) -> list[str]:
    """The snippets :func:`json_values` decodes, in order, without duplicates."""
    return list(_candidates(text))


def _candidates(text: str) -> Iterator[str]:
    # Lazy: a well-formed answer decodes from its fence or its whole text, and the caller
    # that takes it never pays for the bracket scan (four passes over the text in Python).
    text = text[:MAX_SEARCH_CHARS]
    seen: set[str] = {""}
    for match in _FENCE.finditer(text):
        if (snippet := match.group(1).strip()) not in seen:
            seen.add(snippet)
            yield snippet
    if (snippet := strip_fence(text)) not in seen:
        seen.add(snippet)
        yield snippet
    for span in _bracketed(text):
        if span not in seen:
            seen.add(span)
            yield span


def _bracketed(text: str) -> list[str]:
    """Balanced ``{...}``/``[...]`` spans: the outermost in order, then the nested ones."""
    pairs: set[tuple[int, int]] = set()
    for open_, close in _BRACKETS:
        # Strings tracked first (a "}" inside a reason is not a close); then brackets only,
        # for sloppy answers whose stray quote would swallow the rest of the text.
        pairs |= _pairs(text, open_, close, track_strings=True)
        pairs |= _pairs(text, open_, close, track_strings=False)
    outer: list[tuple[int, int]] = []
    nested: list[tuple[int, int]] = []
    last_end = -1
    for start, end in sorted(pairs, key=lambda p: (p[0], -p[1])):
        (nested if end <= last_end else outer).append((start, end))
        last_end = max(last_end, end)
    chosen = (outer + nested)[:MAX_CANDIDATES]
    return [text[start : end + 1] for start, end in chosen]


def _pairs(text: str, open_: str, close: str, *, track_strings: bool) -> set[tuple[int, int]]:
    # One linear pass with a stack: adversarial input ("{" * 10**5) stays linear.
    pairs: set[tuple[int, int]] = set()
    stack: list[int] = []
    in_string = False
    escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"' and track_strings:
            in_string = True
        elif ch == open_:
            stack.append(i)
        elif ch == close and stack:
            pairs.add((stack.pop(), i))
    return pairs


def decode(snippet: str) -> tuple[Any, str] | None:
    """JSON, else a Python literal, else lightly repaired JSON; ``None`` when none reads."""
    try:
        return json.loads(snippet), "json"
    except (ValueError, RecursionError):
        pass
    if snippet[:1] in "{[":
        try:
            return ast.literal_eval(snippet), "python_literal"
        except Exception:  # noqa: BLE001 - literal_eval raises many types on junk
            pass
    repaired = snippet
    for step in (_drop_trailing_commas, _quote_bare_keys, _double_quote, _json_constants):
        candidate = step(repaired)
        if candidate == repaired:
            continue
        repaired = candidate
        try:
            return json.loads(repaired), "repaired_json"
        except (ValueError, RecursionError):
            continue
    return None


def _drop_trailing_commas(s: str) -> str:
    return _TRAILING_COMMA.sub(r"\1", s)


def _quote_bare_keys(s: str) -> str:
    return _BARE_KEY.sub(r'\1"\2":', s)


def _double_quote(s: str) -> str:
    return _SINGLE_QUOTED.sub(lambda m: json.dumps(m.group(1).replace("\\'", "'")), s)


def _json_constants(s: str) -> str:
    return _PY_CONSTANT.sub(lambda m: _PY_CONSTANTS[m.group(1)], s)
