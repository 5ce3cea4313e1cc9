"""The one JSON-answer extractor: fences, prose, sloppy JSON, bounded work, never raises."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codi_eval.answers import MAX_CANDIDATES, json_values, snippets, strip_fence

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=30)
json_docs = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)
objects = st.dictionaries(st.text(min_size=1, max_size=10), json_docs, min_size=1, max_size=4)
# Prose around an answer; brackets and backticks would make candidates of their own.
prose = st.text(
    alphabet=st.characters(blacklist_characters="{}[]`\"'", blacklist_categories=("Cs",)),
    max_size=120,
)


@settings(max_examples=300)
@given(st.text(max_size=600))
def test_any_text_never_raises(text: str) -> None:
    for found in json_values(text):
        assert found.how in ("json", "python_literal", "repaired_json")
        assert found.snippet in text or found.snippet in strip_fence(text)


@settings(max_examples=150)
@given(objects, prose, prose)
def test_an_object_in_prose_or_fences_is_found_as_written(
    obj: dict, before: str, after: str
) -> None:
    body = json.dumps(obj)
    for answer in (
        body,
        f"```json\n{body}\n```",
        f"{before}\n{body}\n{after}",
        f"{before}\n```\n{body}\n```\n{after}",
    ):
        values = [f.value for f in json_values(answer)]
        assert obj in values, answer


@pytest.mark.parametrize(
    "answer",
    [
        "{'score': 0.7, 'reason': 'covers the loop',}",  # Python literal
        '{"score": 0.7, "reason": "covers the loop",}',  # trailing comma
        "{score: 0.7, reason: 'covers the loop'}",  # bare keys, single quotes
        "{score: 0.7, reason: 'covers the loop', done: True}",
    ],
)
def test_light_repairs_read_sloppy_json(answer: str) -> None:
    (first, *_) = json_values(answer)
    assert first.value["score"] == 0.7 and first.value["reason"] == "covers the loop"
    assert first.how in ("python_literal", "repaired_json")


def test_outermost_spans_come_before_nested_ones_and_lists_are_found() -> None:
    answer = 'Steps: [{"Denser_Summary": "S1"}, {"Denser_Summary": "S2"}] done'
    values = [f.value for f in json_values(answer)]
    assert values[0] == [{"Denser_Summary": "S1"}, {"Denser_Summary": "S2"}]
    assert {"Denser_Summary": "S1"} in values[1:]
    # A bracket in prose around the JSON does not hide the object inside it.
    wrapped = 'note [see {"score": 0.4} above]'
    assert {"score": 0.4} in [f.value for f in json_values(wrapped)]


def test_an_unclosed_fence_is_stripped() -> None:
    assert strip_fence('```json\n{"a": 1}') == '{"a": 1}'
    assert strip_fence("```\nplain\n```") == "plain"
    assert [f.value for f in json_values('```json\n{"a": 1}')] == [{"a": 1}]


@pytest.mark.parametrize(
    "answer",
    [
        "{" * 100_000,
        "[" * 50_000 + "]" * 50_000,
        '{"a": ' * 20_000 + "1" + "}" * 20_000,
        "x" * 5_000_000,
        "{}" * 200_000,
    ],
)
def test_work_on_huge_answers_is_bounded(answer: str) -> None:
    started = time.perf_counter()
    found = list(json_values(answer))
    assert time.perf_counter() - started < 10
    assert len(snippets(answer)) <= MAX_CANDIDATES + 2
    assert len(found) <= MAX_CANDIDATES + 2
