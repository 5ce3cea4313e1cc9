"""The judge-answer parser: never raises, never invents a score, reads every common shape."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codi_eval.judging.parser import normalise_score, parse_judge_answer

scores_0_1 = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
reasons = st.text(max_size=200)
# Prose around an answer; braces and backticks would make a second candidate object.
prose = st.text(
    alphabet=st.characters(blacklist_characters="{}`", blacklist_categories=("Cs",)), max_size=120
)


@settings(max_examples=400)
@given(st.text(max_size=500))
def test_any_text_never_raises_and_failures_keep_the_raw_text(text: str) -> None:
    judgement = parse_judge_answer(text)
    if judgement.status == "ok":
        assert judgement.score is not None and 0.0 <= judgement.score <= 1.0
        assert judgement.scale is not None
    else:
        assert judgement.score is None
        assert judgement.raw == text
        assert judgement.meta["error"]


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
    )
)
def test_any_json_value_never_raises(value: object) -> None:
    text = json.dumps(value)
    judgement = parse_judge_answer(text)
    assert judgement.status in ("ok", "failed")
    assert (judgement.score is None) == (judgement.status == "failed")


@given(scores_0_1, reasons)
def test_valid_json_with_a_score_in_range_round_trips(score: float, reason: str) -> None:
    raw = json.dumps({"score": score, "reason": reason})
    judgement = parse_judge_answer(raw)
    assert judgement.status == "ok"
    assert judgement.score == score
    assert judgement.scale == "0-1"
    assert judgement.reason == (reason.strip() or None)
    assert judgement.raw == raw


@given(scores_0_1, prose, prose)
def test_json_inside_fences_and_prose_is_found(score: float, before: str, after: str) -> None:
    body = json.dumps({"score": score, "reason": "names every call"})
    for raw in (
        f"```json\n{body}\n```",
        f"{before}\n{body}\n{after}",
        f"{before}\n```\n{body}\n```\n{after}",
    ):
        judgement = parse_judge_answer(raw)
        assert judgement.status == "ok", raw
        assert judgement.score == score
        assert judgement.reason == "names every call"


@given(st.integers(min_value=0, max_value=100), st.integers(min_value=1, max_value=100))
def test_prose_fraction_is_value_over_denominator(value: int, denominator: int) -> None:
    judgement = parse_judge_answer(f"The summary is fine.\nScore: {value}/{denominator}")
    if value <= denominator:
        assert judgement.status == "ok"
        assert judgement.score == pytest.approx(value / denominator)
    else:
        assert judgement.status == "failed"
        assert "outside" in judgement.meta["error"]


@pytest.mark.parametrize(
    ("raw", "score", "scale"),
    [
        ('{"score": 0.8, "reason": "ok"}', 0.8, "0-1"),
        ('{"score": 1}', 1.0, "0-1"),
        ('{"score": 4, "reason": "ok"}', 0.75, "1-5"),
        ('{"score": 5}', 1.0, "1-5"),
        ('{"rating": 7}', 0.7, "0-10"),
        ('{"quality": 85}', 0.85, "0-100"),
        ('{"score": "90%"}', 0.9, "0-100"),
        ('{"score": "4/5"}', 0.8, "0-5"),
        ('{"score": 3, "out_of": 4}', 0.75, "0-4"),
        ("4", 0.75, "1-5"),
        ("0.25", 0.25, "0-1"),
        ("I rate it 4/5: accurate but wordy.", 0.8, "0-5"),
        ("Score: 8 out of 10", 0.8, "0-10"),
        ("Rating = 3", 0.5, "1-5"),
        ("Accuracy score: 5/5\nConciseness score: 2/5\nOverall score: 3/5", 0.6, "0-5"),
    ],
)
def test_scales_are_detected_and_normalised(raw: str, score: float, scale: str) -> None:
    judgement = parse_judge_answer(raw)
    assert judgement.status == "ok", judgement.reason
    assert judgement.score == pytest.approx(score)
    assert judgement.scale == scale


def test_a_bare_number_is_read_on_the_scale_the_prompt_asked_for() -> None:
    assert parse_judge_answer("1", expected_scale="1-5").score == 0.0
    assert parse_judge_answer("1").score == 1.0
    on_ten = parse_judge_answer('{"score": 3}', expected_scale="0-10")
    assert (on_ten.score, on_ten.scale) == (pytest.approx(0.3), "0-10")


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
        ('{"score": 6, "out_of": 5}', "outside"),
        ('{"score": NaN}', "not finite"),
        ("Score: 6/5", "outside"),
        ("3/5 of the calls are named, 2/4 parameters", "several"),
    ],
)
def test_unreadable_or_out_of_range_answers_fail_with_raw_kept(raw: str | None, why: str) -> None:
    judgement = parse_judge_answer(raw)
    assert judgement.status == "failed"
    assert judgement.score is None  # never a silent 0
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


def test_normalise_score_refuses_instead_of_clamping() -> None:
    assert normalise_score(4) == (0.75, "1-5")
    assert normalise_score(3, denominator=10) == (pytest.approx(0.3), "0-10")
    with pytest.raises(ValueError, match="outside"):
        normalise_score(11, denominator=10)
    with pytest.raises(ValueError):
        normalise_score(math.inf)
