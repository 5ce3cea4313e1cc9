"""The "entities" of a piece of code, and which of them a summary mentions."""

from __future__ import annotations

import functools
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable

from codi_eval.code_facts.facts import CodeFacts
from codi_eval.code_facts.fallback import strip_noise
from codi_eval.code_facts.languages import _PY_BUILTINS, canonical_language, known_names

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Receivers are never what a reader names: `self._encode` is "_encode".
_RECEIVERS = frozenset({"self", "cls", "mcs", "this", "super"})
# In a Flutter State class `widget` is the receiver of the widget's own fields.
_LANGUAGE_RECEIVERS = {"dart": frozenset({"widget"})}
_PY_NOISE = _PY_BUILTINS | known_names("python")


@functools.lru_cache(maxsize=64)
def _noise_test(language: str) -> Callable[[str], bool]:
    """A predicate for words that are never entities of code in ``language``."""
    canonical = canonical_language(language)
    receivers = _RECEIVERS | _LANGUAGE_RECEIVERS.get(canonical or "", frozenset())
    # Python's builtins stay noise for languages without a word list of their own, as the
    # token fallback has always treated them.
    words = (
        _PY_NOISE
        if canonical in (None, "python")
        else known_names(canonical) | frozenset({"True", "False", "None"})
    )
    stop = receivers | words | {"_"}
    return lambda word: not word or word in stop


def _entity_form(
    call: str, is_noise: Callable[[str], bool], receivers: frozenset[str]
) -> str | None:
    parts = call.split(".")
    while parts and parts[0] in receivers:
        parts = parts[1:]
    form = ".".join(parts)
    if not form or (len(parts) == 1 and is_noise(form)):
        return None
    return form


def _add(seq: list[str], item: str | None) -> None:
    if item and item not in seq:
        seq.append(item)


def entities_from(facts: CodeFacts, code: str, language: str) -> tuple[str, ...]:
    """The entity list for ``facts`` of ``code`` (see :func:`codi_eval.code_facts.entities`)."""
    is_noise = _noise_test(language)
    receivers = _RECEIVERS | _LANGUAGE_RECEIVERS.get(
        canonical_language(language) or "", frozenset()
    )
    out: list[str] = []
    if facts.name and not is_noise(facts.name):
        out.append(facts.name)
    for p in facts.params:
        if not is_noise(p):
            _add(out, p)
    for s in facts.state:
        if not is_noise(s):
            _add(out, s)
    for c in facts.calls:
        _add(out, _entity_form(c, is_noise, receivers))
    for r in facts.raises:
        _add(out, _entity_form(r, is_noise, receivers))
    for r in facts.catches:
        _add(out, _entity_form(r, is_noise, receivers))
    covered = {part for e in out for part in e.split(".")}
    counts = facts.identifier_counts or Counter(_IDENT.findall(strip_noise(textwrap.dedent(code))))
    rest = [
        w
        for w in facts.identifiers
        # i, x, it: short names say little and collide with English words
        if len(w) > 2 and not is_noise(w) and w not in covered
    ]
    first_seen = {w: i for i, w in enumerate(rest)}
    rest.sort(key=lambda w: (-counts.get(w, 0), first_seen[w]))
    for w in rest:
        _add(out, w)
    return tuple(out)


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
# A name is bounded by non-word characters. An apostrophe is a boundary when it quotes
# ('url') but not inside a word, so that a parameter "s" is not found in "it's"; a
# possessive 's after a name ("fetch's") still ends the name.
_LEFT = r"(?<![A-Za-z0-9_])(?<![A-Za-z0-9_]')"
_RIGHT = r"(?![A-Za-z0-9_])(?!'(?!s(?![A-Za-z0-9_]))[A-Za-z0-9_])"
# Curly quotes and apostrophes read as the ASCII ones.
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
# A closing quote or backtick before a possessive: "`fetch`'s" is "fetch's".
_QUOTED_POSSESSIVE = re.compile(r"[`\"')\]](?='s(?![a-z0-9_]))")


@functools.lru_cache(maxsize=16384)
def _patterns(entity: str) -> tuple[re.Pattern[str], ...]:
    forms = {entity}
    last = entity.replace("::", ".").split(".")[-1]
    forms.add(last)
    pats = [re.compile(_LEFT + re.escape(f) + _RIGHT, re.I) for f in forms if f]
    # max_retries / maxRetries also read as "max retries" or "max-retries" in prose.
    words = _CAMEL.findall(last.strip("_"))
    if len(words) > 1:
        pats.append(re.compile(_LEFT + r"[\s_-]*".join(map(re.escape, words)) + _RIGHT, re.I))
    elif len(words) == 1 and words[0].lower() != last.lower():
        pats.append(re.compile(_LEFT + re.escape(words[0]) + _RIGHT, re.I))
    return tuple(pats)


# A word with inner apostrophes ("it's", "don't") is one token; quotes around a word are not
# part of it ("'url'" is "url").
_TOKEN = re.compile(r"[a-z0-9_]+(?:'[a-z0-9_]+)*")


def _tokens(low: str) -> set[str]:
    tokens: set[str] = set()
    for token in _TOKEN.findall(low):
        tokens.add(token)
        if token.endswith("'s"):
            tokens.add(token[:-2])  # fetch's → fetch
    return tokens


def normalise_summary(summary: str) -> str:
    """The summary as :func:`mentioned` reads it: ASCII quotes, no quote before a possessive."""
    return _QUOTED_POSSESSIVE.sub("", summary.translate(_QUOTES))


@functools.lru_cache(maxsize=4096)
def mentioned_cached(summary: str, entity_list: tuple[str, ...]) -> tuple[str, ...]:
    # The same summary is checked several times per run (its iteration, the next one,
    # the judge, the metrics), so the answer is memoised. A name bounded by non-word
    # characters is exactly a maximal run of word characters, so one tokenisation of the
    # summary answers most entities without compiling a regex per entity; only names with
    # several words ("max_retries" as "max retries") need the patterns.
    text = normalise_summary(summary)
    low = text.lower()
    tokens = _tokens(low)
    found: list[str] = []
    for entity in entity_list:
        if not entity or entity in found:
            continue
        last = entity.replace("::", ".").split(".")[-1]
        if last.lower() in tokens:
            found.append(entity)
            continue
        words = _CAMEL.findall(last.strip("_"))
        if (
            (len(words) > 1 or (len(words) == 1 and words[0].lower() != last.lower()))
            and all(w.lower() in low for w in words)
            and any(p.search(text) for p in _patterns(entity))
        ):
            found.append(entity)
    return tuple(found)


def mentioned(summary: str, entity_list: Iterable[str]) -> list[str]:
    """See :func:`codi_eval.code_facts.mentioned`."""
    if not summary:
        return []
    return list(mentioned_cached(summary, tuple(entity_list)))


_ALNUM = re.compile(r"[A-Za-z0-9]")


@functools.lru_cache(maxsize=4096)
def word_count_cached(text: str) -> int:
    # Memoised: the same code is measured by every cell that summarizes it.
    has_alnum = _ALNUM.search
    return sum(1 for word in text.split() if has_alnum(word))
