"""The committed datasets: they load, their README records how they were built, and the
build code in the README rebuilds them byte for byte."""

from __future__ import annotations

import ast
import platform
import re
from dataclasses import replace
from pathlib import Path

import pytest

from codi_eval.datasets import content_hash, load_jsonl

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "datasets"


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
