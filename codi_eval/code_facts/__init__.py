"""Facts about a piece of code, and the "entities" a summary of it can mention.

This is the shared vocabulary of codi-eval: Chain of Density counts entities, the
offline baseline writes summaries from :class:`CodeFacts`, and the metrics
(entity density, identifier coverage) and the offline judge score summaries against
:func:`entities`. They read code only through this interface.

One analyser per language behind :func:`analyze`: Python through :mod:`ast`; Dart (and
Flutter) and JavaScript through tree-sitter grammars; code that does not parse, and
every other language, gets a token-based fallback (identifier-looking tokens minus
keywords). Nothing in this package raises on bad input.
"""

from __future__ import annotations

import functools
import keyword
import logging
from collections.abc import Iterable

from codi_eval.code_facts import entities as _entities
from codi_eval.code_facts.facts import CodeFacts, Declaration
from codi_eval.code_facts.fallback import ANY_KEYWORDS, analyze_tokens
from codi_eval.code_facts.languages import (
    SUPPORTED_LANGUAGES,
    accepted_language_names,
    canonical_language,
    known_names,
    language_info,
    language_name,
)

__all__ = [
    "SUPPORTED_LANGUAGES",
    "CodeFacts",
    "Declaration",
    "accepted_language_names",
    "analyze",
    "canonical_language",
    "entities",
    "entity_density",
    "known_names",
    "language_info",
    "language_name",
    "mentioned",
    "word_count",
]

log = logging.getLogger(__name__)
_PY_KEYWORDS = frozenset(keyword.kwlist)


def analyze(code: str, language: str = "python") -> CodeFacts:
    """Facts about ``code``; never raises. ``parse_ok`` says whether a real parser read it
    without a syntax error.

    ``language`` may be any spelling :func:`canonical_language` knows ("Dart", "js");
    ``facts.language`` is then the canonical name. Memoised: the runner asks about the same
    code many times per run (the model, each iteration's density, the judge, the metrics).
    Treat the result as read-only.
    """
    if not isinstance(code, str):
        code = str(code)
    if not isinstance(language, str):
        language = str(language)
    return _analyze_cached(code, language)


@functools.lru_cache(maxsize=2048)
def _analyze_cached(code: str, language: str) -> CodeFacts:
    lang = canonical_language(language)
    if lang == "python":
        from codi_eval.code_facts.python import analyze_python

        try:
            return analyze_python(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            # ValueError: null bytes; RecursionError: absurdly nested input.
            return analyze_tokens(code, "python", _PY_KEYWORDS)
    if lang in ("dart", "javascript"):
        facts = _tree_sitter_facts(code, lang)
        if facts is not None:
            return facts
        return analyze_tokens(code, lang, known_names(lang) | ANY_KEYWORDS)
    raw = (language or "unknown").strip().lower() or "unknown"
    return analyze_tokens(code, raw, ANY_KEYWORDS)


def _tree_sitter_facts(code: str, lang: str) -> CodeFacts | None:
    # Imported on first use: the grammars are compiled extensions a Python-only run skips.
    try:
        if lang == "dart":
            from codi_eval.code_facts.dart import analyze_dart

            return analyze_dart(code)
        from codi_eval.code_facts.javascript import analyze_javascript

        return analyze_javascript(code)
    except (RecursionError, MemoryError, UnicodeError, ValueError) as exc:
        # Facts never stop a run; the token fallback answers instead.
        log.warning("tree-sitter facts failed for %s code: %s", lang, exc)
        return None


def entities(code: str, language: str = "python") -> list[str]:
    """The entities of ``code``, most informative first, deduplicated.

    Order: the function or class name, its parameters, the state it keeps (Flutter
    State classes), the APIs it calls, the exceptions it raises and catches, then other
    identifiers by how often they occur. The language's keywords, receivers (self, this,
    a State's ``widget``) and uninformative core names (len, None, int, print) are left out.
    """
    code = code if isinstance(code, str) else str(code)
    return list(_entities_cached(code, language if isinstance(language, str) else str(language)))


@functools.lru_cache(maxsize=2048)
def _entities_cached(code: str, language: str) -> tuple[str, ...]:
    return _entities.entities_from(analyze(code, language), code, language)


def mentioned(summary: str, entity_list: Iterable[str]) -> list[str]:
    """The entities of ``entity_list`` that ``summary`` mentions, in the list's order.

    Case-insensitive, on word boundaries; backticks, quotes ('url', "url", curly ones),
    parentheses and a possessive ("fetch's") around a name do not matter, while an
    apostrophe inside a word does ("it's" does not mention ``s``); a dotted name counts
    when its last part appears ("join" for ``os.path.join``), and a dotted path in the
    summary (``self.cache.get``, ``widget.title``) mentions each of its parts;
    ``max_retries`` also matches "max retries".
    """
    return _entities.mentioned(summary, entity_list)


def word_count(text: str) -> int:
    """Whitespace-separated words that contain a letter or digit (lone punctuation is not a word)."""
    return _entities.word_count_cached(text or "")


def entity_density(summary: str, entity_list: Iterable[str]) -> float:
    """Unique mentioned entities per word (Chain of Density's measure); 0.0 for empty text."""
    words = word_count(summary)
    if words == 0:
        return 0.0
    return len(mentioned(summary, entity_list)) / words
