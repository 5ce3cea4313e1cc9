"""Datasets: JSONL loading and validation, content hashing, building from Python source."""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import json
import platform
import re
import sys
import tempfile
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codi_eval.datasets import (
    ALLOWED_FIELDS,
    DatasetError,
    DatasetItem,
    build_from_modules,
    content_hash,
    iter_jsonl,
    load_jsonl,
    validate_rows,
    write_jsonl,
)

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "datasets"


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.split("\n\n")[0].split())


def _write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _row(**overrides: object) -> str:
    row: dict[str, object] = {"id": "a", "language": "python", "code": "x = 1", "source": "s"}
    row.update(overrides)
    return json.dumps({k: v for k, v in row.items() if v is not ...})


@pytest.fixture
def synth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write modules into a fresh directory on sys.path; returns a writer(name, source)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def write(relpath: str, source: str) -> None:
        target = tmp_path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(source), encoding="utf-8")
        created.append(relpath.removesuffix(".py").replace("/", ".").removesuffix(".__init__"))
        importlib.invalidate_caches()

    yield write
    for name in created:
        sys.modules.pop(name, None)


# --------------------------------------------------------------------------- building


def test_build_from_json_pairs_code_without_docstring_with_first_paragraph_reference():
    import json.decoder
    import json.encoder

    items = {item.id: item for item in build_from_modules(["json"])}
    assert len(items) >= 8
    for item_id, obj in [
        ("json:dumps", json.dumps),
        ("json.encoder:JSONEncoder.encode", json.encoder.JSONEncoder.encode),
        ("json.decoder:JSONDecoder.raw_decode", json.decoder.JSONDecoder.raw_decode),
    ]:
        item = items[item_id]
        assert item.reference == _first_paragraph(inspect.getdoc(obj))
        # The code is the original function minus its docstring, and nothing else changed.
        original = ast.parse(textwrap.dedent(inspect.getsource(obj))).body[0]
        assert isinstance(original, ast.FunctionDef)
        original.body = original.body[1:]
        assert ast.dump(ast.parse(item.code).body[0]) == ast.dump(original)
        module, qualname = item_id.split(":")
        assert item.source == {
            "module": module,
            "qualname": qualname,
            "path": module.replace(".", "/") + ("/__init__.py" if module == "json" else ".py"),
            "lineno": inspect.getsourcelines(obj)[1],
        }
        assert item.language == "python" and item.instruction is None
    for item in items.values():
        function = ast.parse(item.code).body[0]
        assert isinstance(function, ast.FunctionDef)
        assert ast.get_docstring(function) is None
        assert item.reference and item.reference not in item.code


FILTERS_MODULE = '''
import functools


def kept_function(a, b):
    """Add two numbers together and return the sum.

    A second paragraph that is not part of the reference.
    """

    total = a + b
    return total


@functools.lru_cache(maxsize=None)
def decorated_function(n):
    """Compute a cached square of the given number."""
    result = n * n
    return result


def _private_helper(values):
    """Count the values that are truthy in a list."""
    count = sum(1 for v in values if v)
    return count


def old_style(s):
    """old_style(s : string) ->
    [string]

    Split the string on commas and strip each part.
    """
    parts = s.split(",")
    return [p.strip() for p in parts]


def signature_only(s):
    """signature_only(s) -> list"""
    parts = s.split(",")
    return parts


def test_something():
    """Check that something works as it should."""
    value = 1
    assert value


def helper_for_Testing(x):
    """Return the input unchanged for tests."""
    y = x
    return y


def two_liner(x):
    """Return the argument unchanged, always."""
    return x


def short_doc(x):
    """Do it."""
    y = x + 1
    return y


def undocumented(x):
    y = x + 1
    return y


def only_docstring():
    """A function whose body is only this docstring."""


def same_line_body(x):
    """Docstring shares its line with code."""; y = x
    return y


def long_function(x):
    """Add one to x sixty times in a row."""
__LONG_BODY__
    return x


def outer(x):
    """An outer function with a documented inner function."""
    def inner(y):
        """Inner functions are not candidates at all."""
        z = y + 1
        return z
    return inner(x)


class Box:
    """A box."""

    def __init__(self, w, h):
        """Create a box of the given width and height."""
        self.w = w
        self.h = h

    def __repr__(self):
        """Show the box with its width and height."""
        text = f"Box({self.w}, {self.h})"
        return text

    def area(self):
        """Return the area of the box in square units."""
        w, h = self.w, self.h
        return w * h

    class Lid:
        def open(self, force=False):
            """Open the lid of the box, forcing it when asked."""
            self.is_open = True
            return force


class TestBox:
    def check(self):
        """Methods of test classes are dropped as well."""
        a = 1
        return a
'''.replace("__LONG_BODY__", "\n".join("    x = x + 1" for _ in range(60)))


def test_build_keeps_documented_functions_and_applies_each_filter(synth):
    synth("codi_synth_filters.py", FILTERS_MODULE)
    items = {i.id: i for i in build_from_modules(["codi_synth_filters"])}
    assert set(items) == {
        "codi_synth_filters:kept_function",
        "codi_synth_filters:decorated_function",
        "codi_synth_filters:_private_helper",
        "codi_synth_filters:old_style",
        "codi_synth_filters:outer",
        "codi_synth_filters:Box.area",
        "codi_synth_filters:Box.Lid.open",
    }
    kept = items["codi_synth_filters:kept_function"]
    assert kept.reference == "Add two numbers together and return the sum."
    assert kept.code == "def kept_function(a, b):\n    total = a + b\n    return total"
    assert items["codi_synth_filters:decorated_function"].code.startswith(
        "@functools.lru_cache(maxsize=None)\ndef decorated_function(n):\n"
    )
    assert items["codi_synth_filters:Box.area"].code.startswith("def area(self):\n    w, h")
    assert items["codi_synth_filters:old_style"].reference == (
        "Split the string on commas and strip each part."
    )
    assert "def inner" in items["codi_synth_filters:outer"].code
    assert items["codi_synth_filters:Box.Lid.open"].source == {
        "module": "codi_synth_filters",
        "qualname": "Box.Lid.open",
        "path": "codi_synth_filters.py",
        "lineno": FILTERS_MODULE.count("\n", 0, FILTERS_MODULE.index("def open")) + 1,
    }


def test_build_thresholds_are_parameters(synth):
    synth("codi_synth_thresholds.py", FILTERS_MODULE)
    ids = {i.id for i in build_from_modules(["codi_synth_thresholds"])}
    loose = {
        i.id
        for i in build_from_modules(
            ["codi_synth_thresholds"], min_lines=2, min_doc_tokens=2, max_lines=None
        )
    }
    assert loose - ids == {
        "codi_synth_thresholds:two_liner",
        "codi_synth_thresholds:short_doc",
        "codi_synth_thresholds:long_function",
    }
    # decorator lines do not count; `outer` has 6 lines counted from its def
    strict = {i.id for i in build_from_modules(["codi_synth_thresholds"], max_lines=3)}
    assert ids - strict == {"codi_synth_thresholds:outer"}
    assert "codi_synth_thresholds:decorated_function" in strict


def test_build_walks_package_submodules_but_not_test_modules(synth):
    body = '''
    def {name}(x):
        """Return the value {name} computes for x."""
        y = x + {n}
        return y * {n}
    '''
    synth("codi_synth_pkg/__init__.py", body.format(name="top_level", n=1))
    synth("codi_synth_pkg/sub.py", body.format(name="in_sub", n=2))
    synth("codi_synth_pkg/deeper/__init__.py", "")
    synth("codi_synth_pkg/deeper/leaf.py", body.format(name="in_leaf", n=3))
    synth("codi_synth_pkg/test_helpers.py", body.format(name="in_tests", n=4))
    synth("codi_synth_pkg/tests/__init__.py", body.format(name="in_tests_pkg", n=5))
    items = build_from_modules(["codi_synth_pkg"])
    assert [(i.id, i.source["path"]) for i in items] == [
        ("codi_synth_pkg.deeper.leaf:in_leaf", "codi_synth_pkg/deeper/leaf.py"),
        ("codi_synth_pkg.sub:in_sub", "codi_synth_pkg/sub.py"),
        ("codi_synth_pkg:top_level", "codi_synth_pkg/__init__.py"),
    ]


def test_build_removes_near_duplicates_keeping_the_smallest_id(synth):
    synth(
        "codi_synth_dupa.py",
        '''
        def b_copy(items, key=None, limit=3, reverse=False):
            """Sort the items by key and return the first few of them."""
            if limit < 0:
                raise ValueError("limit must not be negative")
            ordered = sorted(items, key=key, reverse=reverse)
            # a comment that differs
            return list(ordered[:limit])

        def a_copy(items, key=None, limit=3, reverse=False):
            """Return the smallest few items, compared by the key function."""
            if limit < 0:
                raise ValueError("limit must not be negative")
            ordered = sorted(items, key=key, reverse=reverse)
            return list(ordered[:limit])

        def different(items):
            """Return the three largest items in descending order."""
            ordered = sorted(items, reverse=True)
            return list(reversed(ordered))[-3:]
        ''',
    )
    synth(
        "codi_synth_dupb.py",
        '''
        def different(items):
            """Return the three largest items in descending order."""
            best = []
            for item in items:
                best = sorted([*best, item], reverse=True)[:3]
            return best
        ''',
    )
    ids = [i.id for i in build_from_modules(["codi_synth_dupb", "codi_synth_dupa"])]
    # code tokens alike but for the name -> b_copy dropped; same reference and signature
    # -> dupb's `different` dropped, although its code is not alike
    assert ids == ["codi_synth_dupa:a_copy", "codi_synth_dupa:different"]
    assert len(build_from_modules(["codi_synth_dupb"])) == 1
    assert len(build_from_modules(["codi_synth_dupa"], dedup_threshold=1.0)) == 3


def test_build_is_deterministic_and_limit_is_a_seeded_sample_sorted_by_id():
    modules = ["json", "textwrap", "heapq", "bisect"]
    full = build_from_modules(modules)
    assert full == build_from_modules(modules)
    assert full == build_from_modules(list(reversed(modules)) + ["json"])
    assert [i.id for i in full] == sorted(i.id for i in full)
    sample = build_from_modules(modules, limit=7, seed=3)
    assert sample == build_from_modules(modules, limit=7, seed=3)
    assert len(sample) == 7 and [i.id for i in sample] == sorted(i.id for i in sample)
    assert set(sample) <= set(full)
    picks = {tuple(i.id for i in build_from_modules(modules, limit=7, seed=s)) for s in range(5)}
    assert len(picks) > 1
    assert build_from_modules(modules, limit=10_000) == full


def test_build_names_a_module_that_cannot_be_used():
    with pytest.raises(DatasetError, match="'codi_no_such_module_xyz'.*cannot be found"):
        build_from_modules(["codi_no_such_module_xyz"])
    with pytest.raises(DatasetError, match="'math'.*no Python source"):
        build_from_modules(["math"])


def test_build_reads_frozen_stdlib_modules_from_their_files():
    items = build_from_modules(["posixpath"])
    assert items and all(i.source["path"] == "posixpath.py" for i in items)


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
    assert hash(item) == hash(replace(item))
    with pytest.raises(ValueError, match="field 'id'"):
        DatasetItem(id="", language="python", code="pass", source="s")
    with pytest.raises(ValueError, match="field 'source'.*non-finite"):
        DatasetItem(id="a", language="python", code="pass", source={"x": float("inf")})


def test_write_jsonl_refuses_duplicate_ids(tmp_path: Path):
    item = DatasetItem(id="a", language="python", code="pass", source="s")
    with pytest.raises(DatasetError, match="duplicate id 'a'"):
        write_jsonl([item, item], tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


# --------------------------------------------------------------------------- properties

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
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
    changed[index] = replace(items[index], **{field: value})
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


# --------------------------------------------------------------------------- committed files


def _readme() -> str:
    return (DATASETS / "README.md").read_text(encoding="utf-8")


def test_committed_datasets_load_with_unique_ids_and_parseable_code():
    stdlib = load_jsonl(DATASETS / "stdlib-functions.jsonl")
    quick = load_jsonl(DATASETS / "quickstart.jsonl")
    assert len(stdlib) >= 150
    assert 15 <= len(quick) <= 25
    assert len({i.source["module"].split(".")[0] for i in stdlib}) >= 20
    for item in stdlib + quick:
        function = ast.parse(item.code).body[0]
        assert isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        assert ast.get_docstring(function) is None and item.reference
    by_id = {i.id: i for i in stdlib}
    assert all(replace(q, instruction=None) == by_id[q.id] for q in quick)
    assert 3 <= sum(q.instruction is not None for q in quick) < len(quick)


def test_readme_records_the_counts_and_hashes_of_the_committed_files():
    readme = _readme()
    for name in ("stdlib-functions.jsonl", "quickstart.jsonl"):
        items = load_jsonl(DATASETS / name)
        assert re.search(
            rf"`{re.escape(name)}`\s*\|\s*{len(items)}\s*\|\s*`{content_hash(items)}`", readme
        )


def test_readme_build_code_rebuilds_the_committed_files(tmp_path: Path, monkeypatch):
    readme = _readme()
    version = re.search(r"CPython (\d+\.\d+\.\d+)", readme)
    assert version, "datasets/README.md must record the Python version"
    if platform.python_version() != version.group(1):
        pytest.skip(f"committed files were built with Python {version.group(1)}")
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code
    monkeypatch.chdir(tmp_path)
    exec(compile(code.group(1), "datasets/README.md", "exec"), {"__name__": "readme"})
    for name in ("stdlib-functions.jsonl", "quickstart.jsonl"):
        assert (tmp_path / "datasets" / name).read_bytes() == (DATASETS / name).read_bytes()
