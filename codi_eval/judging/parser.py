"""Read a judge's raw answer into a :class:`Judgement`, whatever shape the model chose.

Models asked for ``{"score": ..., "reason": ...}`` still wrap it in ```json fences, add
prose around it, use single quotes or trailing commas, call the score "rating", or answer
on a 1-5 or 0-100 scale. :func:`parse_judge_answer` accepts all of that and normalises the
score to [0, 1], recording the scale it detected.

Two promises: it never raises, and it never invents a score. An answer with no readable
score, or with a score outside every scale it could be on, is a ``failed`` judgement that
keeps the raw text and says why in ``reason`` and ``meta["error"]``.

Scales. A bare number is read on the scale the prompt asked for (``expected_scale``) when
it fits there; otherwise on the first of 0-1, 1-5, 0-10, 0-100 that contains it (so 4 is
read as 4 on 1-5 → 0.75, 7 as 0.7, 85 as 0.85). A fraction "x/M" or "x out of M" means
x/M, scale "0-M" ("0-10" for 8/10); "x%" is on 0-100.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from codi_eval.judging.judgement import Judgement

# Scale name → (lowest, highest) value on it. Order matters: it is the order in which a
# bare number that does not fit the expected scale is tried.
SCALES: dict[str, tuple[float, float]] = {
    "0-1": (0.0, 1.0),
    "1-5": (1.0, 5.0),
    "0-10": (0.0, 10.0),
    "0-100": (0.0, 100.0),
}

SCORE_KEYS: tuple[str, ...] = (
    "score",
    "overall_score",
    "final_score",
    "rating",
    "overall_rating",
    "quality",
    "overall",
    "grade",
    "value",
)
REASON_KEYS: tuple[str, ...] = (
    "reason",
    "reasoning",
    "explanation",
    "justification",
    "rationale",
    "comment",
    "comments",
    "feedback",
    "analysis",
)
# {"score": 4, "out_of": 5}: the judge stated its own scale.
DENOMINATOR_KEYS: tuple[str, ...] = ("out_of", "max_score", "scale_max", "max", "maximum")

# Judges answer in a few hundred characters; anything longer is searched only this far so
# a runaway answer cannot make parsing slow. The raw text is kept whole.
MAX_SEARCH_CHARS = 200_000
# Bounds the brace scan (each start may walk to the end of the text).
MAX_CANDIDATES = 32

_NUMBER = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)"
_SCORE_TEXT = re.compile(
    rf"^\s*({_NUMBER})\s*(?:(%)|(?:/|out\s+of)\s*({_NUMBER}))?\s*$", re.IGNORECASE
)
_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\r?\n?(.*?)```", re.DOTALL)
_LABELED = re.compile(
    r"\b(overall[\s_]+|final[\s_]+)?(?:score|rating|quality|grade)\b[\"']?\s*"
    rf"(?:[:=]|\bis\b|\bof\b)?\s*[*\"']*\s*({_NUMBER})"
    rf"\s*(?:(%)|(?:/|\bout\s+of\b)\s*({_NUMBER}))?",
    re.IGNORECASE,
)
# A fraction standing alone ("4/5", "7 out of 10"), not part of a date or a path.
_FRACTION = re.compile(
    rf"(?<![\w./])({_NUMBER})\s*(?:/|\bout\s+of\b)\s*({_NUMBER})(?![\w/]|\.\d)", re.IGNORECASE
)
_REASON_LABEL = re.compile(
    r"\b(?:reason|reasoning|explanation|justification|rationale)\b[\"']?\s*[:=]\s*(.+)",
    re.IGNORECASE | re.DOTALL,
)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_BARE_KEY = re.compile(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:")
_SINGLE_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")
_PY_CONSTANTS = {"True": "true", "False": "false", "None": "null"}
_PY_CONSTANT = re.compile(r"\b(True|False|None)\b")


class _Invalid(Exception):
    """A score was found but cannot be used (out of range, not a number)."""


@dataclass(frozen=True)
class _Found:
    value: Any
    reason: str | None
    denominator: Any = None
    key: str | None = None


def parse_judge_answer(
    raw: str | None, *, metric_name: str = "summary_quality", expected_scale: str = "0-1"
) -> Judgement:
    """Parse a judge's answer; never raises. See the module docstring for the rules.

    ``expected_scale`` is the scale the judge's prompt asked for (a key of :data:`SCALES`);
    it decides how a bare number that fits several scales (such as 1) is read.
    """
    if expected_scale not in SCALES:
        # A programming error in the caller, not a bad answer; still no exception here.
        return _failed(metric_name, raw, f"unknown expected scale {expected_scale!r}")
    if raw is None or not raw.strip():
        return _failed(metric_name, raw, "empty answer")
    text = raw[:MAX_SEARCH_CHARS]
    try:
        return _parse(text, raw, metric_name, expected_scale)
    except _Invalid as exc:
        return _failed(metric_name, raw, str(exc))
    except Exception as exc:  # noqa: BLE001 - the promise is "never raises"; keep the evidence
        return _failed(metric_name, raw, f"parser error: {type(exc).__name__}: {exc}")


def normalise_score(
    value: float,
    *,
    denominator: float | None = None,
    percent: bool = False,
    expected_scale: str = "0-1",
) -> tuple[float, str]:
    """Map a judge's number to ([0, 1], scale name); ``ValueError`` when it fits no scale."""
    try:
        return _normalise(value, denominator, percent, expected_scale)
    except _Invalid as exc:
        raise ValueError(str(exc)) from None


def _parse(text: str, raw: str, metric_name: str, expected_scale: str) -> Judgement:
    for snippet in _candidates(text):
        decoded = _decode(snippet)
        if decoded is None:
            continue
        obj, how = decoded
        found = _from_object(obj)
        if found is None:
            continue
        score, scale = _score_of(found, expected_scale)
        meta: dict[str, Any] = {"source": how}
        if found.key:
            meta["score_key"] = found.key
        return Judgement(metric_name, score, found.reason, "ok", raw, scale, meta)
    return _parse_prose(text, raw, metric_name, expected_scale)


def _candidates(text: str) -> list[str]:
    """Snippets that may hold the JSON verdict, most likely first, without duplicates."""
    seen: dict[str, None] = {}
    for match in _FENCE.finditer(text):
        seen.setdefault(match.group(1).strip(), None)
    seen.setdefault(_strip_fence(text.strip()), None)
    for span in _braced(text):
        seen.setdefault(span, None)
    return [s for s in seen if s]


def _strip_fence(text: str) -> str:
    # An unclosed fence (answer cut off by max_tokens) still starts with ```json.
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else text[3:]
    if text.endswith("```"):
        text = text[:-3]
    return text.strip()


def _braced(text: str) -> list[str]:
    """Outermost balanced ``{...}`` spans, in order, at most :data:`MAX_CANDIDATES`."""
    # Strings tracked first (a "}" inside a reason is not a close); then braces only, for
    # sloppy answers whose stray quote would swallow the rest of the text.
    pairs = _brace_pairs(text, track_strings=True) | _brace_pairs(text, track_strings=False)
    spans: list[str] = []
    last_end = -1
    for start, end in sorted(pairs, key=lambda p: (p[0], -p[1])):
        if end <= last_end:
            continue  # nested inside a span already taken
        spans.append(text[start : end + 1])
        last_end = end
        if len(spans) >= MAX_CANDIDATES:
            break
    return spans


def _brace_pairs(text: str, *, track_strings: bool) -> set[tuple[int, int]]:
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
        elif ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs.add((stack.pop(), i))
    return pairs


def _decode(snippet: str) -> tuple[Any, str] | None:
    """JSON, else a Python literal (single quotes, trailing commas), else repaired JSON."""
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


def _from_object(obj: Any, depth: int = 0) -> _Found | None:
    """The score (and reason) in a decoded answer, or ``None`` when it holds no score."""
    if isinstance(obj, bool):
        return None
    if isinstance(obj, int | float):
        return _Found(obj, None)
    if isinstance(obj, str):
        return _Found(obj, None) if _SCORE_TEXT.match(obj) else None
    if isinstance(obj, list) and depth < 2:
        for item in obj[:8]:
            if isinstance(item, dict) and (found := _from_object(item, depth + 1)):
                return found
        return None
    if not isinstance(obj, dict) or depth > 2:
        return None
    keyed = {_key(k): v for k, v in obj.items()}
    reason = next(
        (v.strip() for k in REASON_KEYS if isinstance(v := keyed.get(k), str) and v.strip()),
        None,
    )
    denominator = next((keyed[k] for k in DENOMINATOR_KEYS if k in keyed), None)
    for key in SCORE_KEYS:
        if key not in keyed:
            continue
        value = keyed[key]
        if isinstance(value, dict):
            inner = _from_object(value, depth + 1)
            if inner is not None:
                return _Found(inner.value, inner.reason or reason, inner.denominator, key)
            continue
        return _Found(value, reason, denominator, key)
    # {"evaluation": {"score": 4, "reason": ...}}: one wrapper object is common enough.
    for value in obj.values():
        if isinstance(value, dict | list):
            inner = _from_object(value, depth + 1)
            if inner is not None:
                return _Found(inner.value, inner.reason or reason, inner.denominator, inner.key)
    return None


def _key(k: Any) -> str:
    return re.sub(r"[\s-]+", "_", str(k).strip().lower())


def _score_of(found: _Found, expected_scale: str) -> tuple[float, str]:
    value = found.value
    denominator = _number(found.denominator) if found.denominator is not None else None
    percent = False
    if isinstance(value, str):
        match = _SCORE_TEXT.match(value)
        if match is None:
            raise _Invalid(f"score is not a number: {value[:80]!r}")
        value = float(match.group(1))
        percent = match.group(2) is not None
        if match.group(3) is not None:
            denominator = float(match.group(3))
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"score is not a number: {str(value)[:80]!r}")
    return _normalise(float(value), denominator, percent, expected_scale)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise _Invalid(f"scale maximum is not a number: {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _Invalid(f"scale maximum is not a number: {str(value)[:80]!r}") from None


def _normalise(
    value: float, denominator: float | None, percent: bool, expected_scale: str
) -> tuple[float, str]:
    if not math.isfinite(value):
        raise _Invalid(f"score is not finite: {value}")
    if percent:
        scale, (low, high) = "0-100", SCALES["0-100"]
    elif denominator is not None:
        if not math.isfinite(denominator) or denominator <= 0:
            raise _Invalid(f"scale maximum must be positive, got {denominator}")
        low, high = 0.0, denominator
        scale = f"0-{_fmt(denominator)}"
    else:
        low, high = SCALES[expected_scale]
        scale = expected_scale
        if not low <= value <= high:
            fitting = [name for name, (lo, hi) in SCALES.items() if lo <= value <= hi]
            if not fitting:
                raise _Invalid(f"score {_fmt(value)} is outside every known scale (0-1 .. 0-100)")
            scale = fitting[0]
            low, high = SCALES[scale]
    if not low <= value <= high:
        # Clamping would turn a confused judge into a confident one; refuse instead.
        raise _Invalid(f"score {_fmt(value)} is outside the {scale} scale")
    return (value - low) / (high - low), scale


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _parse_prose(text: str, raw: str, metric_name: str, expected_scale: str) -> Judgement:
    labeled = list(_LABELED.finditer(text))
    match: re.Match[str] | None = None
    if labeled:
        # "Accuracy score: 4/5 ... Overall score: 3.5/5": the overall one is the verdict;
        # without a marked overall, a judge's last score is its conclusion.
        overall = [m for m in labeled if m.group(1)]
        match = (overall or labeled)[-1]
        value, percent, denominator = match.group(2), match.group(3), match.group(4)
    else:
        fractions = list(_FRACTION.finditer(text))
        distinct = {(float(m.group(1)), float(m.group(2))) for m in fractions}
        if len(distinct) != 1:
            why = (
                "no score found"
                if not distinct
                else "several different fractions, no labelled score"
            )
            return _failed(metric_name, raw, why)
        match = fractions[-1]
        value, percent, denominator = match.group(1), None, match.group(2)
    score, scale = _normalise(
        float(value),
        float(denominator) if denominator is not None else None,
        percent is not None,
        expected_scale,
    )
    return Judgement(
        metric_name,
        score,
        _prose_reason(text, match),
        "ok",
        raw,
        scale,
        {"source": "prose", "matched": match.group(0).strip()},
    )


def _prose_reason(text: str, match: re.Match[str]) -> str | None:
    labeled = _REASON_LABEL.search(text)
    if labeled:
        reason = labeled.group(1)
    else:
        # The answer minus its score is the judge's explanation.
        reason = text[: match.start()] + " " + text[match.end() :]
    reason = reason.strip().strip("{}\"'`*#:-, \n\t").strip()
    return reason or None


def _failed(metric_name: str, raw: str | None, why: str) -> Judgement:
    return Judgement(
        metric_name=metric_name,
        score=None,
        reason=f"unparseable judge answer: {why}",
        status="failed",
        raw=raw,
        scale=None,
        meta={"error": why},
    )
