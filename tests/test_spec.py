"""Experiment specs as typed models: errors with file/line/field, the published JSON Schema,
and hostile files (alias bombs, binary, deep nesting, NUL) refused with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from codi_eval.errors import InputError
from codi_eval.experiments.spec import load_spec, spec_json_schema
from tests.cli_helpers import ROOT, run_cli, scalar

QUICK = ROOT / "datasets" / "quickstart.jsonl"
GOOD = f"name: t\ndataset: {QUICK}\nmatrix: {{prompt: cod_iteration@1, model: offline}}\n"


def test_every_shipped_experiment_validates_against_the_published_schema() -> None:
    schema = spec_json_schema()
    specs = sorted((ROOT / "experiments").glob("*.yaml"))
    assert specs
    for path in specs:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
        load_spec(path)  # and the loader agrees


def test_the_schema_refuses_what_the_loader_refuses(tmp_path: Path) -> None:
    schema = spec_json_schema()
    bad = yaml.safe_load(GOOD + "repeats: 0\nsampel: {n: 2}\n")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD + "metrics: [rouge_l, entity_densty]\n")
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert info.value.field == "metrics[1]" and "did you mean 'entity_density'" in str(info.value)
    assert info.value.line == 4
    assert "entity_density" in json.dumps(schema)  # metric names are an enum in the schema


def test_spec_schema_command_prints_json_schema() -> None:
    done = run_cli("spec", "schema", db_url="sqlite:////nonexistent/never.db")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["title"] == "codi-eval experiment spec"


def test_a_single_value_may_stand_for_a_list() -> None:
    spec = load_spec(_write(GOOD))
    assert spec.matrix.prompt == ["cod_iteration@1"] and spec.matrix.model == ["offline"]


BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)


def _write(text: str | bytes, name: str = "spec.yaml") -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (BILLION_LAUGHS, "expands to more than"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not UTF-8"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper"),
        ("name: t\x00\n", "NUL"),
        (GOOD + 'description: "x\\ud800"\n', "surrogate"),
        ("", "empty"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_hostile_specs_exit_2_naming_the_file_and_store_nothing(
    tmp_path: Path, content: str | bytes, words: str
) -> None:
    path = _write(content)
    store = tmp_path / "store.db"
    done = run_cli("run", str(path), db_url=f"sqlite:///{store}", timeout=60)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert str(path) in done.stderr and words in done.stderr
    assert "Traceback" not in done.stderr
    assert not store.exists() or scalar(f"sqlite:///{store}", "select count(*) from runs") == 0


def test_a_spec_over_the_size_limit_is_refused() -> None:
    path = _write(GOOD + "description: " + "x" * (1024 * 1024 + 10) + "\n")
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert "at most" in str(info.value)
