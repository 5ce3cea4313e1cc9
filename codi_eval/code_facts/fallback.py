"""The token-based fallback: facts for code no parser read (identifier-looking tokens
minus keywords, calls by ``name(``, definitions by keyword patterns)."""

from __future__ import annotations

import keyword
import re

from codi_eval.code_facts.facts import CodeFacts

_RECEIVERS = frozenset({"self", "cls", "mcs", "this", "super"})

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
#: What the fallback treats as keywords of an unknown language.
ANY_KEYWORDS = _OTHER_KEYWORDS | _PY_KEYWORDS

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED_CALL = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*(?:\s*(?:\.|::|->)\s*[A-Za-z_][A-Za-z0-9_]*)*)\s*\("
)


def _add(seq: list[str], item: str | None) -> None:
    if item and item not in seq:
        seq.append(item)


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


def strip_noise(code: str) -> str:
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


def analyze_tokens(code: str, lang: str, stop: frozenset[str]) -> CodeFacts:
    text = strip_noise(code)
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
