"""The Python dataset builder: documented functions from modules, CodeSearchNet-style."""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import textwrap
from pathlib import Path

import pytest

from codi_eval.builders.python import build_from_modules
from codi_eval.datasets import DatasetError


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.split("\n\n")[0].split())


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
