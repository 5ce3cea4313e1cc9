"""Datasets: JSONL loading and validation, content hashing."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codi_eval.datasets import (
    ALLOWED_FIELDS,
    DatasetError,
    DatasetItem,
    content_hash,
    iter_jsonl,
    load_jsonl,
    validate_rows,
    write_jsonl,
)


def _write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _row(**overrides: object) -> str:
    row: dict[str, object] = {"id": "a", "language": "python", "code": "x = 1", "source": "s"}
    row.update(overrides)
    return json.dumps({k: v for k, v in row.items() if v is not ...})


# --------------------------------------------------------------------------- loading


def test_loader_message_names_file_line_and_field(tmp_path: Path):
    path = _write(tmp_path / "x.jsonl", _row(id="a"), "", _row(id="b", code=""))
    with pytest.raises(DatasetError) as caught:
        load_jsonl(path)
    assert str(caught.value) == f"{path}:3: field 'code': must be a non-empty string"
    issue = caught.value.errors[0]
    assert (issue.line, issue.field) == (3, "code")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", r":1: invalid JSON: .*column 2"),
        ("[1, 2]", r":1: expected a JSON object, got an array"),
        ('"text"', r":1: expected a JSON object, got a string"),
        (_row(id=...), r":1: field 'id': is required"),
        (_row(source=...), r":1: field 'source': is required"),
        (_row(language=3), r":1: field 'language': must be a non-empty string"),
        (_row(code="   "), r":1: field 'code': must be a non-empty string"),
        (_row(instruction=["x"]), r":1: field 'instruction': must be a non-empty string"),
        (_row(reference=""), r":1: field 'reference': must be a non-empty string"),
        (_row(source=5), r":1: field 'source': must be a non-empty string or an object"),
        (_row(extra=1), r":1: field 'extra': unknown field; allowed fields are id, language"),
        ('{"id": "a", "id": "b"}', r":1: field 'id': appears more than once"),
        (_row(source={"x": float("nan")}), r":1: invalid JSON: NaN"),
        ("[" * 100_000, r":1: invalid JSON"),
    ],
)
def test_loader_refuses_each_kind_of_bad_row(tmp_path: Path, line: str, expected: str):
    path = _write(tmp_path / "bad.jsonl", line)
    with pytest.raises(DatasetError, match=re.escape(str(path)) + expected):
        load_jsonl(path)


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ('{"id": "a", "language": "python", "code": "x = 1\\u0000", "source": "s"}', "code", "NUL"),
        (
            '{"id": "a\\ud800", "language": "python", "code": "x = 1", "source": "s"}',
            "id",
            "surrogate",
        ),
        (
            '{"id": "a", "language": "python", "code": "x = 1", "source": {"k": "\\udfff"}}',
            "source",
            "surrogate",
        ),
    ],
)
def test_rows_that_cannot_be_stored_are_refused_naming_line_and_field(
    tmp_path: Path, line: str, field: str, words: str
):
    """A NUL in code was a DataError deep inside a PostgreSQL write; a lone surrogate was a
    UnicodeEncodeError traceback. Both are the loader's errors now, before anything is stored."""
    path = _write(tmp_path / "hostile.jsonl", _row(id="ok"), line)
    with pytest.raises(DatasetError) as caught:
        load_jsonl(path)
    issue = caught.value.errors[0]
    assert (issue.line, issue.field) == (2, field) and words in issue.message


def test_loader_reports_invalid_utf8_and_missing_files(tmp_path: Path):
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(_row().encode() + b"\n" + b'{"id": "\xff"}\n')
    with pytest.raises(DatasetError, match=r":2: not valid UTF-8"):
        load_jsonl(path)
    with pytest.raises(DatasetError, match="cannot read"):
        load_jsonl(tmp_path / "missing.jsonl")


def test_duplicate_ids_name_both_lines(tmp_path: Path):
    path = _write(tmp_path / "d.jsonl", _row(id="a"), _row(id="b"), "", _row(id="a"))
    with pytest.raises(DatasetError) as caught:
        load_jsonl(path)
    assert str(caught.value) == f"{path}:4: field 'id': duplicate id 'a' (first on line 1)"


def test_all_problems_are_collected_up_to_max_errors(tmp_path: Path):
    path = _write(
        tmp_path / "many.jsonl", _row(id=""), "nope", _row(code=5, language=""), _row(zzz=1)
    )
    with pytest.raises(DatasetError) as caught:
        load_jsonl(path)
    found = [(e.line, e.field) for e in caught.value.errors]
    assert found == [(1, "id"), (2, None), (3, "language"), (3, "code"), (4, "zzz")]
    assert str(caught.value).startswith(f"5 problems in {path}:\n  {path}:1: field 'id'")
    with pytest.raises(DatasetError) as truncated:
        load_jsonl(path, max_errors=2)
    assert len(truncated.value.errors) == 2 and truncated.value.truncated


def test_blank_lines_and_null_optionals_are_accepted(tmp_path: Path):
    path = _write(tmp_path / "ok.jsonl", "", _row(id="a", instruction=None), "   ", _row(id="b"))
    items = load_jsonl(path)
    assert [i.id for i in items] == ["a", "b"] and items[0].instruction is None


def test_iter_jsonl_streams_and_stops_at_the_first_bad_row(tmp_path: Path):
    path = _write(tmp_path / "s.jsonl", _row(id="a"), _row(id="b"), _row(id="a"), "junk")
    stream = iter_jsonl(path)
    assert next(stream).id == "a" and next(stream).id == "b"
    with pytest.raises(DatasetError, match=r":3: field 'id': duplicate id 'a'"):
        next(stream)


def test_validate_rows_accepts_parsed_objects():
    items = validate_rows([{"id": "x", "language": "go", "code": "func f() {}", "source": {}}])
    assert items[0].source == {}
    with pytest.raises(DatasetError, match=r"api:2: field 'code'"):
        validate_rows([json.loads(_row(id="x")), {"id": "y"}], path="api")
    with pytest.raises(DatasetError, match=r"api:1: expected a JSON object, got an array"):
        validate_rows([[1]], path="api")  # type: ignore[list-item]


def test_item_construction_validates_and_to_json_omits_absent_fields():
    item = DatasetItem(id="a", language="python", code="pass", source={"k": [1]})
    assert item.to_json() == {"id": "a", "language": "python", "code": "pass", "source": {"k": [1]}}
    item.to_json()["source"]["k"].append(2)
    assert item.source == {"k": [1]}
    assert hash(item) == hash(item.model_copy())
    with pytest.raises(ValueError, match="field 'id'"):
        DatasetItem.from_json({"id": "", "language": "python", "code": "pass", "source": "s"})
    with pytest.raises(ValueError, match="field 'source'.*non-finite"):
        DatasetItem.from_json(
            {"id": "a", "language": "python", "code": "pass", "source": {"x": float("inf")}}
        )
    with pytest.raises(ValueError, match="id"):  # the constructor validates too
        DatasetItem(id="", language="python", code="pass", source="s")


def test_write_jsonl_refuses_duplicate_ids(tmp_path: Path):
    item = DatasetItem(id="a", language="python", code="pass", source="s")
    with pytest.raises(DatasetError, match="duplicate id 'a'"):
        write_jsonl([item, item], tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


# --------------------------------------------------------------------------- properties

# Storable text: no lone surrogates and no NUL (PostgreSQL cannot hold it; both are refused).
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
_nonblank = _text.filter(lambda s: s.strip() != "")
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_items = st.builds(
    DatasetItem,
    id=_nonblank,
    language=_nonblank,
    code=_nonblank,
    source=_nonblank | st.dictionaries(_text, _json, max_size=4),
    instruction=st.none() | _nonblank,
    reference=st.none() | _nonblank,
)
_unique_items = st.lists(_items, max_size=6, unique_by=lambda i: i.id)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=40) | _json.map(json.dumps), max_size=6))
def test_arbitrary_lines_only_ever_raise_dataset_error(lines):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "any.jsonl"
        path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines))
        try:
            load_jsonl(path)
        except DatasetError as exc:
            assert exc.errors and all(str(path) in str(e) for e in exc.errors)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from([*ALLOWED_FIELDS, "x"]), _json), max_size=4))
def test_arbitrary_objects_only_ever_raise_dataset_error(rows):
    try:
        items = validate_rows(rows)
    except DatasetError as exc:
        assert all(e.line is not None for e in exc.errors)
    else:
        assert [i.to_json() for i in items] == [
            {k: v for k, v in r.items() if v is not None} for r in rows
        ]


@settings(max_examples=100, deadline=None)
@given(_unique_items)
def test_valid_items_round_trip_through_write_and_load(items):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sub" / "rt.jsonl"
        assert write_jsonl(items, path) == len(items)
        loaded = load_jsonl(path)
        assert loaded == items
        assert list(iter_jsonl(path)) == items
        assert content_hash(loaded) == content_hash(items)


_changes = {
    "id": _nonblank,
    "language": _nonblank,
    "code": _nonblank,
    "instruction": st.none() | _nonblank,
    "reference": st.none() | _nonblank,
    "source": _nonblank | st.dictionaries(_text, _json, max_size=4),
}


@settings(max_examples=150, deadline=None)
@given(_unique_items.filter(bool), st.data())
def test_content_hash_changes_when_any_field_of_any_item_changes(items, data):
    index = data.draw(st.integers(0, len(items) - 1))
    field = data.draw(st.sampled_from(sorted(_changes)))
    value = data.draw(_changes[field].filter(lambda v: v != getattr(items[index], field)))
    changed = list(items)
    changed[index] = items[index].model_copy(update={field: value})
    assert content_hash(changed) != content_hash(items)


def test_content_hash_is_order_sensitive_and_stable():
    a = DatasetItem(id="a", language="python", code="pass", source={"b": 1, "a": "é"})
    b = DatasetItem(id="b", language="python", code="pass", source="s")
    assert content_hash([a, b]) != content_hash([b, a])
    assert content_hash([]) != content_hash([a])
    # A fixed value: the serialisation must not drift between runs or platforms.
    assert content_hash([a, b]) == content_hash(
        [DatasetItem(id="a", language="python", code="pass", source={"a": "é", "b": 1}), b]
    )
    canonical = '{"code":"pass","id":"a","language":"python","source":{"a":"é","b":1}}\n'
    expected = hashlib.sha256(b"codi-eval-dataset-v1\n" + canonical.encode("utf-8"))
    assert content_hash([a]) == expected.hexdigest()
    assert (
        expected.hexdigest() == "3c16d51c1435b461939451f907acd3a24815a16a8f00bb11e4f44b39a6bd8b2a"
    )
