"""Facts about a piece of code, and the "entities" a summary of it can mention.

This is the shared vocabulary of codi-eval: Chain of Density counts entities, the
offline baseline writes summaries from :class:`CodeFacts`, and the metrics
(entity density, identifier coverage) score summaries against :func:`entities`.

Python is analysed with :mod:`ast`; code that does not parse, and every other
language, gets a token-based fallback (identifier-looking tokens minus keywords).
Nothing in this module raises on bad input.
"""

from __future__ import annotations

import ast
import builtins
import functools
import io
import keyword
import re
import textwrap
import tokenize
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["CodeFacts", "analyze", "entities", "mentioned", "word_count", "entity_density"]


@dataclass(frozen=True)
class CodeFacts:
    """What a function, class or module does, as far as its syntax tells."""

    language: str
    name: str | None = None
    kind: str = "unknown"  # "function" | "method" | "class" | "module" | "unknown"
    params: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # dotted, first-appearance order
    returns: bool = False
    yields: bool = False
    loops: list[str] = field(default_factory=list)  # "for", "while", "comprehension"
    recursive: bool = False
    raises: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    parse_ok: bool = False


# Words that are never entities: receivers, literals, and builtins that say nothing
# about a particular function (len, isinstance). Exception classes are builtins too,
# but "raises ValueError" is informative, so they are kept.
_RECEIVERS = frozenset({"self", "cls", "mcs", "this", "super"})
_UNINFORMATIVE_BUILTINS = frozenset(
    name
    for name in dir(builtins)
    if not (
        isinstance(getattr(builtins, name), type)
        and issubclass(getattr(builtins, name), BaseException)
    )
) | {"True", "False", "None"}

# A union of keywords from the languages a code dataset is likely to hold; the fallback
# does not know the grammar, only which words cannot be names.
_OTHER_KEYWORDS = frozenset(
    """
    abstract and as async await auto bool boolean break byte case catch char chan class
    const constexpr continue crate debugger def default defer delete do double dyn elif
    else elsif end enum ensure except explicit export extends extern false final finally
    float fn for foreach friend from func function go goto if impl implements import in
    inline instanceof int interface internal is let long loop match mod module move mut
    namespace native new nil not null of or override package pass private protected pub
    public raise readonly ref register rescue return self Self short signed sizeof static
    struct super switch synchronized template then this throw throws trait true try type
    typedef typeof undef union unless unsafe unsigned until use using var virtual void
    volatile when where while with yield val fun object companion lateinit println
    printf echo elseif endif string String
    """.split()
)
_PY_KEYWORDS = frozenset(keyword.kwlist)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED_CALL = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*(?:\s*(?:\.|::|->)\s*[A-Za-z_][A-Za-z0-9_]*)*)\s*\("
)


def analyze(code: str, language: str = "python") -> CodeFacts:
    """Facts about ``code``; never raises. ``parse_ok`` says whether a real parser read it.

    Memoised: the runner asks about the same code many times per run (the model, each
    iteration's density, the judge, the metrics). Treat the result as read-only.
    """
    if not isinstance(code, str):
        code = str(code)
    return _analyze_cached(code, language)


@functools.lru_cache(maxsize=2048)
def _analyze_cached(code: str, language: str) -> CodeFacts:
    lang = (language or "unknown").strip().lower()
    if lang in ("python", "py", "python3"):
        try:
            return _analyze_python(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            # ValueError: null bytes; RecursionError: absurdly nested input.
            return _analyze_tokens(code, "python", _PY_KEYWORDS)
    return _analyze_tokens(code, lang, _OTHER_KEYWORDS | _PY_KEYWORDS)


# --------------------------------------------------------------------------- Python


def _dotted(node: ast.AST) -> str | None:
    """``os.path.join`` for an Attribute chain; the attribute alone when the base is a call."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif not parts:
        return None
    return ".".join(reversed(parts))


def _add(seq: list[str], item: str | None) -> None:
    if item and item not in seq:
        seq.append(item)


class _Collector(ast.NodeVisitor):
    def __init__(self, target: ast.AST, name: str | None) -> None:
        self.target = target
        self.name = name
        self.calls: list[tuple[int, int, str]] = []
        self.raises: list[str] = []
        self.loops: list[str] = []
        self.returns = False
        self.yields = False
        self.recursive = False
        self._function_depth = 0

    def _own_scope(self) -> bool:
        # A return inside a nested def or lambda is not the analysed function's return.
        return self._function_depth <= 1

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._function_depth += 1
        self.generic_visit(node)
        self._function_depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function_depth += 2
        self.generic_visit(node)
        self._function_depth -= 2

    def visit_Call(self, node: ast.Call) -> None:
        dotted = _dotted(node.func)
        if dotted:
            end = (
                getattr(node.func, "end_lineno", 0) or 0,
                getattr(node.func, "end_col_offset", 0) or 0,
            )
            self.calls.append((end[0], end[1], dotted))
            if self.name and dotted in (self.name, f"self.{self.name}", f"cls.{self.name}"):
                self.recursive = True
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        if (
            self._own_scope()
            and node.value is not None
            and not (isinstance(node.value, ast.Constant) and node.value.value is None)
        ):
            self.returns = True
        self.generic_visit(node)

    def visit_Yield(self, node: ast.Yield | ast.YieldFrom) -> None:
        if self._own_scope():
            self.yields = True
        self.generic_visit(node)

    visit_YieldFrom = visit_Yield

    def visit_Raise(self, node: ast.Raise) -> None:
        exc = node.exc
        if isinstance(exc, ast.Call):
            exc = exc.func
        if exc is not None:
            _add(self.raises, _dotted(exc))
        self.generic_visit(node)

    def _loop(self, kind: str, node: ast.AST) -> None:
        _add(self.loops, kind)
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        self._loop("for", node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        self._loop("async for", node)

    def visit_While(self, node: ast.While) -> None:
        self._loop("while", node)

    def visit_ListComp(self, node: ast.AST) -> None:
        self._loop("comprehension", node)

    visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_ListComp


def _python_identifiers(source: str) -> list[str]:
    seen: dict[str, None] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.NAME and tok.string not in _PY_KEYWORDS:
                seen.setdefault(tok.string, None)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return list(seen)


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = fn.args
    names = [x.arg for x in (*a.posonlyargs, *a.args)]
    if a.vararg:
        names.append(a.vararg.arg)
    names += [x.arg for x in a.kwonlyargs]
    if a.kwarg:
        names.append(a.kwarg.arg)
    return names


def _analyze_python(code: str) -> CodeFacts:
    # inspect.getsource on a method returns indented code; dedent so ast accepts it.
    source = textwrap.dedent(code)
    tree = ast.parse(source)
    defs = [
        n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    target: ast.AST = tree
    name: str | None = None
    kind = "module"
    params: list[str] = []
    if len(defs) == 1:
        target = defs[0]
        name = defs[0].name
        if isinstance(target, ast.ClassDef):
            kind = "class"
        else:
            params = _params(target)
            kind = "function"
            if params and params[0] in ("self", "cls"):
                kind = "method"
                params = params[1:]
    collector = _Collector(target, name)
    collector.visit(target)
    calls: list[str] = []
    for _, _, dotted in sorted(collector.calls, key=lambda c: (c[0], c[1])):
        _add(calls, dotted)
    is_function = kind in ("function", "method")
    return CodeFacts(
        language="python",
        name=name,
        kind=kind,
        params=params,
        calls=calls,
        returns=collector.returns if is_function else False,
        yields=collector.yields if is_function else False,
        loops=collector.loops,
        recursive=collector.recursive,
        raises=collector.raises,
        identifiers=_python_identifiers(source),
        parse_ok=True,
    )


# --------------------------------------------------------------------------- fallback

_STRINGS = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|`[^`]*`')
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_LINE_COMMENT = re.compile(r"(?://|#)[^\n]*")
_DEF_PATTERNS = (
    re.compile(r"\b(?:def|function|func|fn|fun|sub|proc)\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)\s*\("),
    re.compile(r"\b(?:class|struct|interface|trait|impl)\s+([A-Za-z_]\w*)"),
    # C, Java, C#: "type name(" at the start of a line.
    re.compile(r"^[ \t]*(?:[\w<>\[\],*&:]+[ \t]+)+\**([A-Za-z_]\w*)\s*\(", re.M),
)
_LANG_NAME_FIRST = frozenset({"go"})  # "a int" puts the name first


def _strip_noise(code: str) -> str:
    code = _BLOCK_COMMENT.sub(" ", code)
    code = _STRINGS.sub(" ", code)
    return _LINE_COMMENT.sub(" ", code)


def _fallback_params(text: str, start: int, lang: str, stop: frozenset[str]) -> list[str]:
    depth, end = 0, None
    for i in range(start, min(len(text), start + 2000)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                end = i
                break
    if end is None:
        return []
    params: list[str] = []
    for chunk in text[start + 1 : end].split(","):
        chunk = chunk.split("=")[0]
        if ":" in chunk and "::" not in chunk:
            chunk = chunk.split(":")[0]
            words = _IDENT.findall(chunk)
            pick = words[-1] if words else None
        else:
            words = [w for w in _IDENT.findall(chunk) if w not in stop]
            if not words:
                continue
            pick = words[0] if lang in _LANG_NAME_FIRST else words[-1]
        if pick and pick not in stop and pick not in _RECEIVERS:
            _add(params, pick)
    return params


def _analyze_tokens(code: str, lang: str, stop: frozenset[str]) -> CodeFacts:
    text = _strip_noise(code)
    identifiers: list[str] = []
    for word in _IDENT.findall(text):
        if word not in stop:
            _add(identifiers, word)
    name, params, def_end = None, [], -1
    for pattern in _DEF_PATTERNS:
        m = pattern.search(text)
        if m and m.group(1) not in stop:
            name, def_end = m.group(1), m.end()
            if text[m.end() - 1 : m.end()] == "(":
                params = _fallback_params(text, m.end() - 1, lang, stop)
            break
    calls: list[str] = []
    for m in _DOTTED_CALL.finditer(text):
        dotted = re.sub(r"\s*(?:\.|::|->)\s*", ".", m.group(1))
        head = dotted.split(".")[0]
        if dotted in stop or (head in stop and "." not in dotted):
            continue
        if m.end() == def_end:  # the definition itself, not a call
            continue
        _add(calls, dotted)
    raises: list[str] = []
    for m in re.finditer(r"\b(?:throw\s+new|throw|raise|panic!?)\s*\(?\s*([A-Za-z_][\w.]*)", text):
        if m.group(1) not in stop:
            _add(raises, m.group(1))
    loops: list[str] = []
    for word, label in (("for", "for"), ("foreach", "for"), ("while", "while"), ("loop", "while")):
        if re.search(rf"\b{word}\b", text):
            _add(loops, label)
    return CodeFacts(
        language=lang,
        name=name,
        kind="function"
        if name and def_end >= 0 and text[def_end - 1] == "("
        else ("class" if name else "unknown"),
        params=params,
        calls=calls,
        returns=bool(re.search(r"\breturn\b\s*[^;\s}]", text)),
        yields=bool(re.search(r"\byield\b", text)),
        loops=loops,
        recursive=bool(name) and any(c.split(".")[-1] == name for c in calls),
        raises=raises,
        identifiers=identifiers,
        parse_ok=False,
    )


# --------------------------------------------------------------------------- entities


def _is_noise(word: str) -> bool:
    return (
        not word
        or word in _RECEIVERS
        or word in _UNINFORMATIVE_BUILTINS
        or word in _PY_KEYWORDS
        or word == "_"
    )


def _entity_form(call: str) -> str | None:
    """``self._encode`` → ``_encode``: the receiver is not part of what a reader names."""
    parts = call.split(".")
    while parts and parts[0] in _RECEIVERS:
        parts = parts[1:]
    form = ".".join(parts)
    if not form or (len(parts) == 1 and _is_noise(form)):
        return None
    return form


def entities(code: str, language: str = "python") -> list[str]:
    """The entities of ``code``, most informative first, deduplicated.

    Order: the function or class name, its parameters, the APIs it calls, the
    exceptions it raises, then other identifiers by how often they occur. Keywords,
    receivers (self, cls) and uninformative builtins (len, None, True) are left out.
    """
    return list(_entities_cached(code if isinstance(code, str) else str(code), language))


@functools.lru_cache(maxsize=2048)
def _entities_cached(code: str, language: str) -> tuple[str, ...]:
    facts = analyze(code, language)
    out: list[str] = []
    if facts.name and not _is_noise(facts.name):
        out.append(facts.name)
    for p in facts.params:
        if not _is_noise(p):
            _add(out, p)
    for c in facts.calls:
        _add(out, _entity_form(c))
    for r in facts.raises:
        _add(out, _entity_form(r))
    covered = {part for e in out for part in e.split(".")}
    counts = Counter(_IDENT.findall(_strip_noise(textwrap.dedent(code))))
    rest = [
        w
        for w in facts.identifiers
        # i, x, it: short names say little and collide with English words
        if len(w) > 2 and not _is_noise(w) and w not in covered
    ]
    first_seen = {w: i for i, w in enumerate(rest)}
    rest.sort(key=lambda w: (-counts.get(w, 0), first_seen[w]))
    for w in rest:
        _add(out, w)
    return tuple(out)


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
# Apostrophes count as word characters so that a parameter "s" is not found in "it's".
_LEFT = r"(?<![A-Za-z0-9_'])"
_RIGHT = r"(?![A-Za-z0-9_'])"


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


def mentioned(summary: str, entity_list: Iterable[str]) -> list[str]:
    """The entities of ``entity_list`` that ``summary`` mentions, in the list's order.

    Case-insensitive, on word boundaries; backticks and parentheses around a name do
    not matter; a dotted name counts when its last part appears ("join" for
    ``os.path.join``); ``max_retries`` also matches "max retries".
    """
    if not summary:
        return []
    return list(_mentioned_cached(summary, tuple(entity_list)))


_TOKEN = re.compile(r"[a-z0-9_']+")


@functools.lru_cache(maxsize=4096)
def _mentioned_cached(summary: str, entity_list: tuple[str, ...]) -> tuple[str, ...]:
    # The same summary is checked several times per run (its iteration, the next one,
    # the judge, the metrics), so the answer is memoised. A name bounded by non-word
    # characters is exactly a maximal run of word characters, so one tokenisation of the
    # summary answers most entities without compiling a regex per entity; only names with
    # several words ("max_retries" as "max retries") need the patterns.
    low = summary.lower()
    tokens = set(_TOKEN.findall(low))
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
            and any(p.search(summary) for p in _patterns(entity))
        ):
            found.append(entity)
    return tuple(found)


_ALNUM = re.compile(r"[A-Za-z0-9]")


def word_count(text: str) -> int:
    """Whitespace-separated words that contain a letter or digit (lone punctuation is not a word)."""
    return _word_count(text or "")


@functools.lru_cache(maxsize=4096)
def _word_count(text: str) -> int:
    # Memoised: the same code is measured by every cell that summarizes it.
    has_alnum = _ALNUM.search
    return sum(1 for word in text.split() if has_alnum(word))


def entity_density(summary: str, entity_list: Iterable[str]) -> float:
    """Unique mentioned entities per word (Chain of Density's measure); 0.0 for empty text."""
    words = word_count(summary)
    if words == 0:
        return 0.0
    return len(mentioned(summary, entity_list)) / words
