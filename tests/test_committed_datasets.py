"""The committed datasets: they load, their README records how they were built, and the
build code in the README rebuilds them byte for byte."""

from __future__ import annotations

import ast
import platform
import re
from pathlib import Path

import pytest

from codi_eval.builders import build_from_source
from codi_eval.code_facts import analyze
from codi_eval.datasets import content_hash, load_jsonl, write_jsonl
from tests.corpora import corpora_dir

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
    assert all(q.model_copy(update={"instruction": None}) == by_id[q.id] for q in quick)
    assert 3 <= sum(q.instruction is not None for q in quick) < len(quick)


SOURCE_DATASETS = {
    "flutter-samples.jsonl": "dart",
    "dart-core.jsonl": "dart",
    "lodash-functions.jsonl": "javascript",
}


def test_readme_records_the_counts_and_hashes_of_the_committed_files():
    readme = _readme()
    for name in ("stdlib-functions.jsonl", "quickstart.jsonl", *SOURCE_DATASETS):
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


def test_source_datasets_hold_real_pairs_without_doc_comments():
    dart_rows = 0
    for name, language in SOURCE_DATASETS.items():
        items = load_jsonl(DATASETS / name)
        assert len(items) >= 100, name
        for item in items:
            assert item.language == language
            # No doc comment is left (a `// "file:///"` comment may still hold the characters).
            assert not re.search(r"^\s*(?:///|/\*\*)|[;{}]\s*(?:///|/\*\*)", item.code, re.M), (
                item.id
            )
            assert item.reference and len(re.findall(r"\w+", item.reference)) >= 3
            assert item.id == f"{item.source['path'].rsplit('.', 1)[0]}:{item.source['qualname']}"
            facts = analyze(item.code, language)
            assert facts.parse_ok and facts.name == item.source["qualname"].split(".")[-1], item.id
        dart_rows += len(items) if language == "dart" else 0
    assert dart_rows >= 150


@pytest.mark.parametrize("name", ["flutter-samples", "dart-core"])
def test_the_readme_command_rebuilds_the_dart_datasets_from_the_corpora(tmp_path: Path, name: str):
    command = (
        f"codi-eval datasets build --source ../shared/corpora/{name} --language dart "
        f"--out datasets/{name}.jsonl"
    )
    assert command in _readme()
    items = build_from_source(corpora_dir() / name, "dart")
    write_jsonl(items, tmp_path / f"{name}.jsonl")
    assert (tmp_path / f"{name}.jsonl").read_bytes() == (DATASETS / f"{name}.jsonl").read_bytes()


def test_license_notices_are_kept_with_the_datasets():
    licenses = DATASETS / "licenses"
    assert "Redistribution and use in source and binary forms" in (
        licenses / "flutter-samples-LICENSE"
    ).read_text(encoding="utf-8")
    packages = {i.id.split("/")[1] for i in load_jsonl(DATASETS / "dart-core.jsonl")}
    for package in packages:
        assert (licenses / "dart-core" / f"{package}-LICENSE").is_file(), package
    assert "OpenJS Foundation" in (licenses / "lodash-LICENSE").read_text(encoding="utf-8")
    readme = _readme()
    assert "licenses/" in readme and "lodash@4.17.21" in readme
