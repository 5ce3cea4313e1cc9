"""The judge-answer parser: never raises, reads the declared scale only, never rescales."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from codi_eval.judging.parser import parse_judge_answer
from codi_eval.judging.scale import Scale

ZERO_ONE = Scale()
ONE_FIVE = Scale(min=1, max=5, integer=True)
ZERO_TEN = Scale(min=0, max=10)

reasons = st.text(max_size=200)
# Prose around an answer; braces and backticks would make a second candidate object.
prose = st.text(
    alphabet=st.characters(blacklist_characters="{}[]`", blacklist_categories=("Cs",)),
    max_size=120,
)


@st.composite
def scales(draw: st.DrawFn) -> Scale:
    integer = draw(st.booleans())
    if integer:
        low = draw(st.integers(min_value=-5, max_value=5))
        return Scale(min=low, max=low + draw(st.integers(min_value=1, max_value=100)), integer=True)
    low = draw(st.floats(min_value=-10, max_value=10, allow_nan=False))
    width = draw(st.floats(min_value=0.01, max_value=100, allow_nan=False))
    return Scale(min=low, max=low + width)


def decimal(value: float) -> float:
    """``value`` as a judge writes it in prose (three decimals), read back."""
    return float(f"{value:.3f}")


# --- the examples -----------------------------------------------------------------


def test_a_two_from_a_zero_to_one_judge_is_refused_not_read_as_one_to_five() -> None:
    # Before: 0.25 (2 read on 1-5). A number off the declared scale is a failed judgement.
    raw = '{"score": 2}'
    judgement = parse_judge_answer(raw, scale=ZERO_ONE)
    assert judgement.status == "failed" and judgement.score is None
    assert judgement.raw == raw
    assert "outside the declared 0-1 scale" in judgement.meta["error"]


def test_a_bare_number_is_read_on_the_declared_scale_and_nowhere_else() -> None:
    # {"score": 1, "reason": "terrible"}: on a declared 0-1 scale 1 is the top, and that is
    # what the prompt asked for; on a 1-5 scale it is the bottom. The declaration decides,
    # never a guess from the number.
    raw = '{"score": 1, "reason": "terrible"}'
    top = parse_judge_answer(raw, scale=ZERO_ONE)
    bottom = parse_judge_answer(raw, scale=ONE_FIVE)
    assert (top.status, top.score, top.scale) == ("ok", 1.0, "0-1")
    assert (bottom.status, bottom.score, bottom.scale) == ("ok", 0.0, "1-5")
    assert bottom.meta["declared_scale"] == {"min": 1, "max": 5, "integer": True}
    # Before: 0.5 on a 1-5 judge (read as 0-1). Now refused.
    half = parse_judge_answer('{"score": 0.5}', scale=ONE_FIVE)
    assert half.status == "failed" and "outside the declared 1-5 scale" in half.meta["error"]
    # Before: 0.75 from "4" on a 0-1 judge (read as 1-5). Now refused.
    assert parse_judge_answer("4", scale=ZERO_ONE).status == "failed"


def test_an_integer_scale_refuses_fractions_of_a_point() -> None:
    judgement = parse_judge_answer('{"score": 3.5, "reason": "fine"}', scale=ONE_FIVE)
    assert judgement.status == "failed" and "whole number" in judgement.meta["error"]
    assert parse_judge_answer('{"score": 4.0}', scale=ONE_FIVE).score == 0.75


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.text(max_size=500), scales())
def test_any_text_never_raises_and_failures_keep_the_raw_text(text: str, scale: Scale) -> None:
    judgement = parse_judge_answer(text, scale=scale)
    if judgement.status == "ok":
        assert judgement.score is not None and 0.0 <= judgement.score <= 1.0
        assert judgement.scale is not None
    else:
        assert judgement.score is None
        assert judgement.raw == text
        assert judgement.meta["error"]
    assert judgement.meta["declared_scale"] == scale.describe()


@settings(max_examples=200)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(["score", "rating", "reason", "out_of", "x"]), children, max_size=4
            )
        ),
        max_leaves=12,
    ),
    scales(),
)
def test_any_json_value_never_raises(value: object, scale: Scale) -> None:
    judgement = parse_judge_answer(json.dumps(value), scale=scale)
    assert judgement.status in ("ok", "failed")
    assert (judgement.score is None) == (judgement.status == "failed")


@settings(max_examples=300)
@given(scales(), st.floats(min_value=0, max_value=1), reasons, prose, prose)
def test_an_answer_on_the_declared_scale_round_trips(
    scale: Scale, where: float, reason: str, before: str, after: str
) -> None:
    value = scale.min + where * (scale.max - scale.min)
    value = float(round(value)) if scale.integer else value
    assume(scale.min <= value <= scale.max)
    expected = (value - scale.min) / (scale.max - scale.min)
    body = json.dumps({"score": value, "reason": reason})
    for raw in (body, f"```json\n{body}\n```", f"{before}\n{body}\n{after}"):
        judgement = parse_judge_answer(raw, scale=scale)
        assert judgement.status == "ok", (raw, judgement.reason)
        assert judgement.score == pytest.approx(expected)
        assert judgement.scale == scale.name
        assert judgement.reason == (reason.strip() or None)
        assert judgement.raw == raw


@settings(max_examples=300)
@given(
    scales(),
    st.floats(min_value=0.001, max_value=1000, allow_nan=False),
    st.booleans(),
    st.sampled_from(["json", "bare", "prose", "string"]),
)
def test_a_number_off_the_declared_scale_is_never_an_ok_judgement(
    scale: Scale, distance: float, above: bool, form: str
) -> None:
    value = decimal(scale.max + distance if above else scale.min - distance)
    assume(not scale.min <= value <= scale.max)
    raw = {
        "json": json.dumps({"score": value, "reason": "r"}),
        "bare": f"{value:.3f}",
        "prose": f"The summary is accurate.\nScore: {value:.3f}",
        "string": json.dumps({"score": f"{value:.3f}"}),
    }[form]
    judgement = parse_judge_answer(raw, scale=scale)
    assert judgement.status == "failed", (raw, judgement.score)
    assert judgement.score is None and judgement.raw == raw


@settings(max_examples=200)
@given(st.integers(min_value=-5, max_value=5), st.integers(min_value=2, max_value=20), st.data())
def test_a_fraction_of_a_point_on_an_integer_scale_is_never_ok(
    low: int, width: int, data: st.DataObject
) -> None:
    scale = Scale(min=low, max=low + width, integer=True)
    whole = data.draw(st.integers(min_value=low, max_value=low + width - 1))
    value = whole + data.draw(st.sampled_from([0.25, 0.5, 0.75]))
    judgement = parse_judge_answer(json.dumps({"score": value}), scale=scale)
    assert judgement.status == "failed" and judgement.score is None


@given(st.integers(min_value=0, max_value=100), st.integers(min_value=2, max_value=100))
def test_a_fraction_the_answer_states_is_value_over_denominator(
    value: int, denominator: int
) -> None:
    judgement = parse_judge_answer(f"The summary is fine.\nScore: {value}/{denominator}")
    if value <= denominator:
        assert judgement.status == "ok"
        assert judgement.score == pytest.approx(value / denominator)
        assert judgement.scale == f"0-{denominator}"
    else:
        assert judgement.status == "failed"
        assert "outside" in judgement.meta["error"]


# --- explicit scales the answer states ----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "scale", "score", "read_on"),
    [
        ('{"score": 0.8, "reason": "ok"}', ZERO_ONE, 0.8, "0-1"),
        ('{"score": 1}', ZERO_ONE, 1.0, "0-1"),
        ('{"score": 4, "reason": "ok"}', ONE_FIVE, 0.75, "1-5"),
        ('{"rating": 7}', ZERO_TEN, 0.7, "0-10"),
        ('{"score": "90%"}', ZERO_ONE, 0.9, "0-100"),
        ('{"score": "4/5"}', ZERO_ONE, 0.8, "0-5"),
        # "4/5" from a 1-5 judge restates the declared scale: 4 on 1-5.
        ('{"score": "4/5"}', ONE_FIVE, 0.75, "1-5"),
        ('{"score": 3, "out_of": 4}', ZERO_ONE, 0.75, "0-4"),
        ("0.25", ZERO_ONE, 0.25, "0-1"),
        ("4", ONE_FIVE, 0.75, "1-5"),
        ("I rate it 4/5: accurate but wordy.", ZERO_ONE, 0.8, "0-5"),
        ("Score: 8 out of 10", ONE_FIVE, 0.8, "0-10"),
        ("Rating = 3", ONE_FIVE, 0.5, "1-5"),
        ("Accuracy score: 5/5\nConciseness score: 2/5\nOverall score: 3/5", ZERO_ONE, 0.6, "0-5"),
    ],
)
def test_declared_and_stated_scales_are_read(
    raw: str, scale: Scale, score: float, read_on: str
) -> None:
    judgement = parse_judge_answer(raw, scale=scale)
    assert judgement.status == "ok", judgement.reason
    assert judgement.score == pytest.approx(score)
    assert judgement.scale == read_on


@pytest.mark.parametrize(
    "raw",
    [
        "{'score': 0.7, 'reason': 'covers the loop',}",  # Python literal
        '{"score": 0.7, "reason": "covers the loop",}',  # trailing comma
        "{score: 0.7, reason: 'covers the loop'}",  # bare keys, single quotes
        '{"Score": 0.7, "Explanation": "covers the loop"}',
        '{"rating": 0.7, "justification": "covers the loop"}',
        '{"evaluation": {"score": 0.7, "rationale": "covers the loop"}}',
        'Here you go:\n```JSON\n{"score": 0.7, "reason": "covers the loop"}\n```\nHope it helps',
    ],
)
def test_sloppy_json_and_key_variants_are_read(raw: str) -> None:
    judgement = parse_judge_answer(raw)
    assert judgement.status == "ok", judgement.reason
    assert judgement.score == pytest.approx(0.7)
    assert judgement.reason == "covers the loop"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        (None, "empty"),
        ("The summary is good and accurate.", "no score"),
        ('{"reason": "good"}', "no score"),
        ('{"score": "excellent"}', "not a number"),
        ('{"score": true}', "not a number"),
        ('{"score": -0.2}', "outside"),
        ('{"score": 150}', "outside"),
        ('{"score": 4, "reason": "ok"}', "outside the declared 0-1 scale"),
        ('{"quality": 85}', "outside the declared 0-1 scale"),
        ('{"score": 6, "out_of": 5}', "outside"),
        ('{"score": NaN}', "not finite"),
        ("Score: 6/5", "outside"),
        ("3/5 of the calls are named, 2/4 parameters", "several"),
    ],
)
def test_unreadable_or_off_scale_answers_fail_with_raw_kept(raw: str | None, why: str) -> None:
    judgement = parse_judge_answer(raw)
    assert judgement.status == "failed"
    assert judgement.score is None  # never a silent 0, never a rescaled number
    assert judgement.raw == raw
    assert why in judgement.meta["error"]
    assert judgement.reason is not None and judgement.reason.startswith("unparseable judge answer")


def test_truncated_json_still_yields_its_score() -> None:
    judgement = parse_judge_answer('```json\n{"score": 0.9, "reason": "The summary names')
    assert judgement.status == "ok"
    assert judgement.score == pytest.approx(0.9)


def test_prose_reason_is_the_answer_without_the_score() -> None:
    judgement = parse_judge_answer("Accurate, but misses the retry loop. Score: 3/5")
    assert judgement.reason == "Accurate, but misses the retry loop."
    labelled = parse_judge_answer("Score: 0.4\nReason: invents a cache")
    assert (labelled.score, labelled.reason) == (pytest.approx(0.4), "invents a cache")


def test_metric_name_is_carried() -> None:
    assert parse_judge_answer("0.5", metric_name="code_quality").metric_name == "code_quality"


def test_a_scale_checks_itself_and_maps_min_to_zero_and_max_to_one() -> None:
    assert ONE_FIVE.normalise(1) == 0.0 and ONE_FIVE.normalise(5) == 1.0
    assert ONE_FIVE.name == "1-5" and Scale().name == "0-1"
    with pytest.raises(ValueError, match="outside"):
        ONE_FIVE.normalise(6)
    with pytest.raises(ValueError, match="finite"):
        ZERO_ONE.normalise(math.inf)
    for bad in ({"min": 1, "max": 1}, {"min": 0.5, "max": 5, "integer": True}, {"min": True}):
        with pytest.raises(ValueError):
            Scale.model_validate(bad)


def test_the_answer_type_carries_the_declared_range_into_its_schema() -> None:
    schema = ONE_FIVE.answer_schema()
    score = schema["properties"]["score"]
    assert (score["type"], score["minimum"], score["maximum"]) == ("integer", 1, 5)
    assert schema["required"] == ["score", "reason"]
    assert Scale().answer_schema()["properties"]["score"]["type"] == "number"
