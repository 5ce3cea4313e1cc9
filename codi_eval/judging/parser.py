"""Read a judge's raw answer into a :class:`Judgement` on the scale its prompt declares.

The judge is asked for its answer type (``{"score": <on the declared scale>, "reason":
...}``; see :mod:`codi_eval.judging.scale`). Finding the answer is lenient: the JSON may sit
in fences or prose, be sloppy (:mod:`codi_eval.answers` reads it), call the score "rating"
or wrap it in another object, or be plain prose ("Score: 0.7"). Reading the *number* is
strict: the score must be on the declared scale (within min..max, a whole number on an
integer scale), and it is then mapped to [0, 1] (min → 0, max → 1). The one other reading
is a scale the answer states itself: "x/N" or "x out of N" (or ``"out_of": N`` beside the
score) means x/N, and "x%" means x/100; an "x/N" whose N is the declared maximum is read
on the declared scale ("4/5" from a 1-5 judge is 4 on 1-5).

Two promises: it never raises, and it never rescales. An answer with no readable score, or
with a score off the declared scale (a 2 from a 0-1 judge, a 0.5 from a 1-5 judge), is a
``failed`` judgement that keeps the raw text and says why in ``reason`` and
``meta["error"]``: a confused judge shows up as a failure, not as a confident number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from codi_eval.answers import MAX_SEARCH_CHARS, json_values
from codi_eval.judging.judgement import Judgement
from codi_eval.judging.scale import DEFAULT_SCALE, Scale

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

_NUMBER = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)"
_SCORE_TEXT = re.compile(
    rf"^\s*({_NUMBER})\s*(?:(%)|(?:/|out\s+of)\s*({_NUMBER}))?\s*$", re.IGNORECASE
)
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


class _Invalid(Exception):
    """A score was found but cannot be used (off the scale, not a number)."""


@dataclass(frozen=True)
class _Found:
    value: Any
    reason: str | None
    denominator: Any = None
    key: str | None = None


def parse_judge_answer(
    raw: str | None, *, metric_name: str = "summary_quality", scale: Scale = DEFAULT_SCALE
) -> Judgement:
    """Parse a judge's answer on the declared ``scale``; never raises, never rescales.

    See the module docstring for the rules. Every judgement's ``meta["declared_scale"]``
    holds the scale the prompt declared; ``scale`` names the one the number was read on.
    """
    try:
        if raw is None or not raw.strip():
            return _failed(metric_name, raw, "empty answer", scale)
        return _parse(raw[:MAX_SEARCH_CHARS], raw, metric_name, scale)
    except _Invalid as exc:
        return _failed(metric_name, raw, str(exc), scale)
    except Exception as exc:  # noqa: BLE001 - the promise is "never raises"; keep the evidence
        return _failed(metric_name, raw, f"parser error: {type(exc).__name__}: {exc}", scale)


def _parse(text: str, raw: str, metric_name: str, scale: Scale) -> Judgement:
    for decoded in json_values(text):
        found = _from_object(decoded.value)
        if found is None:
            continue
        score, read_on = _score_of(found, scale)
        meta: dict[str, Any] = {"source": decoded.how, "declared_scale": scale.describe()}
        if found.key:
            meta["score_key"] = found.key
        return Judgement(metric_name, score, found.reason, "ok", raw, read_on, meta)
    return _parse_prose(text, raw, metric_name, scale)


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


def _score_of(found: _Found, scale: Scale) -> tuple[float, str]:
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
    return _read(float(value), denominator, percent, scale)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise _Invalid(f"scale maximum is not a number: {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _Invalid(f"scale maximum is not a number: {str(value)[:80]!r}") from None


def _read(
    value: float, denominator: float | None, percent: bool, scale: Scale
) -> tuple[float, str]:
    """The score in [0, 1] and the name of the scale it was read on; refuses, never clamps."""
    if not math.isfinite(value):
        raise _Invalid(f"score is not finite: {value}")
    if percent or (denominator is not None and denominator != scale.max):
        high = 100.0 if percent else float(denominator or 0.0)
        if not math.isfinite(high) or high <= 0:
            raise _Invalid(f"scale maximum must be positive, got {denominator}")
        stated = f"0-{_fmt(high)}"
        if not 0.0 <= value <= high:
            raise _Invalid(f"score {_fmt(value)} is outside the {stated} scale the answer states")
        return value / high, stated
    try:
        return scale.normalise(value), scale.name
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _parse_prose(text: str, raw: str, metric_name: str, scale: Scale) -> Judgement:
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
            return _failed(metric_name, raw, why, scale)
        match = fractions[-1]
        value, percent, denominator = match.group(1), None, match.group(2)
    score, read_on = _read(
        float(value),
        float(denominator) if denominator is not None else None,
        percent is not None,
        scale,
    )
    return Judgement(
        metric_name,
        score,
        _prose_reason(text, match),
        "ok",
        raw,
        read_on,
        {
            "source": "prose",
            "matched": match.group(0).strip(),
            "declared_scale": scale.describe(),
        },
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


def _failed(metric_name: str, raw: str | None, why: str, scale: Scale) -> Judgement:
    return Judgement(
        metric_name=metric_name,
        score=None,
        reason=f"unparseable judge answer: {why}",
        status="failed",
        raw=raw,
        scale=None,
        meta={"error": why, "declared_scale": scale.describe()},
    )
