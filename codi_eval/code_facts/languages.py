"""The languages codi-eval understands: canonical names, aliases, names for prompts, and
the words of each language that are never entities of a piece of code."""

from __future__ import annotations

import builtins
import keyword
from dataclasses import dataclass

__all__ = [
    "SUPPORTED_LANGUAGES",
    "LanguageInfo",
    "canonical_language",
    "language_info",
    "language_name",
    "known_names",
]


@dataclass(frozen=True)
class LanguageInfo:
    """What codi-eval knows about one language besides its parser."""

    name: str  # canonical, lower case: what dataset rows and the API use
    display: str  # for prose: "Dart", "JavaScript"
    fence: str  # the Markdown code fence tag
    aliases: tuple[str, ...]
    extensions: tuple[str, ...]
    keywords: frozenset[str]
    # Names that say nothing about a particular piece of code (len, print, int, this):
    # never entities, and a summary may use them without them being in the code.
    uninformative: frozenset[str]


_PY_BUILTINS = frozenset(
    name
    for name in dir(builtins)
    # Exception classes are builtins too, but "raises ValueError" is informative.
    if not (
        isinstance(getattr(builtins, name), type)
        and issubclass(getattr(builtins, name), BaseException)
    )
) | {"True", "False", "None"}

# Dart 3 reserved words, built-in identifiers and contextual keywords.
_DART_KEYWORDS = frozenset(
    """
    abstract as assert async await base break case catch class const continue covariant
    default deferred do dynamic else enum export extends extension external factory false
    final finally for Function get hide if implements import in interface is late library
    mixin new null of on operator part required rethrow return sealed set show static super
    switch sync this throw true try type typedef var void when while with yield
    """.split()
)
# dart:core names that every Dart file may use and that say nothing specific.
_DART_CORE = frozenset(
    """
    int double num bool String Object Null Never dynamic void Function Type Symbol
    List Map Set Iterable Record Comparable Pattern print identical override toString
    hashCode runtimeType noSuchMethod operator length isEmpty isNotEmpty key super this
    """.split()
) | frozenset(
    # Flutter's boilerplate: in every widget, and English words ("state", "widget") that
    # would give any summary credit for saying what kind of code it is.
    """
    Widget StatelessWidget StatefulWidget State BuildContext Key createState mounted
    """.split()
)

_JS_KEYWORDS = frozenset(
    """
    await break case catch class const continue debugger default delete do else enum
    export extends false finally for function if import in instanceof let new null return
    static super switch this throw true try typeof undefined var void while with yield
    async of get set arguments
    """.split()
)
_JS_GLOBALS = frozenset(
    """
    Object Array String Number Boolean Symbol Function console undefined null NaN
    Infinity globalThis window document module exports require this arguments length
    prototype constructor toString valueOf hasOwnProperty call apply bind
    """.split()
)

_LANGUAGES: tuple[LanguageInfo, ...] = (
    LanguageInfo(
        name="python",
        display="Python",
        fence="python",
        aliases=("py", "python3", "py3", "cpython"),
        extensions=(".py", ".pyi"),
        keywords=frozenset(keyword.kwlist),
        uninformative=_PY_BUILTINS | {"self", "cls", "mcs", "super"},
    ),
    LanguageInfo(
        name="dart",
        display="Dart",
        fence="dart",
        aliases=("flutter", "dart3"),
        extensions=(".dart",),
        keywords=_DART_KEYWORDS,
        uninformative=_DART_CORE | {"true", "false", "null"},
    ),
    LanguageInfo(
        name="javascript",
        display="JavaScript",
        fence="javascript",
        aliases=("js", "node", "nodejs", "ecmascript", "es6", "jsx", "mjs", "cjs"),
        extensions=(".js", ".mjs", ".cjs", ".jsx"),
        keywords=_JS_KEYWORDS,
        uninformative=_JS_GLOBALS | {"true", "false", "null"},
    ),
)

_BY_NAME = {info.name: info for info in _LANGUAGES}
_ALIASES = {alias: info.name for info in _LANGUAGES for alias in (info.name, *info.aliases)}

#: The languages with a real parser behind :func:`codi_eval.code_facts.analyze`, by
#: canonical name. Any other language still gets token-based facts, but the API and
#: dataset builders accept only these.
SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(info.name for info in _LANGUAGES)


def canonical_language(name: object) -> str | None:
    """``"dart"`` for ``"Dart"``/``"flutter"``, ``"javascript"`` for ``"js"``, ...;
    ``None`` for a language codi-eval does not support (or a non-string)."""
    if not isinstance(name, str):
        return None
    return _ALIASES.get(name.strip().lower())


def accepted_language_names() -> tuple[str, ...]:
    """Every spelling :func:`canonical_language` accepts (lowercase; case does not matter)."""
    return tuple(sorted(_ALIASES))


def language_info(name: str) -> LanguageInfo | None:
    """The :class:`LanguageInfo` for a supported language or one of its aliases."""
    canonical = canonical_language(name)
    return _BY_NAME[canonical] if canonical else None


def language_name(name: str) -> str:
    """The language's name for prose ("Dart", "JavaScript"); unknown names are returned
    as given, stripped (a prompt should not invent a spelling)."""
    info = language_info(name)
    return info.display if info else (name or "").strip() or "code"


def known_names(name: str) -> frozenset[str]:
    """Keywords and core-library names of the language: never entities, never invented."""
    info = language_info(name)
    if info is None:
        return frozenset()
    return info.keywords | info.uninformative
