"""experiments/flutter-density.yaml: the offline Dart experiment runs, and its metrics are
computed from Dart identifiers."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from codi_eval.code_facts import entities
from codi_eval.judging.metrics import get_metric
from tests.cli_helpers import ROOT, query, run_cli


def test_the_flutter_density_experiment_runs_offline_and_scores_dart_identifiers(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'flutter.db'}"
    result = run_cli("run", "experiments/flutter-density.yaml", "--json", db_url=url)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["runs_failed"] == 0 and data["runs_succeeded"] == 6 * 103
    by_depth = {}
    for cell in data["cells"]:
        assert cell["succeeded"] == 103
        by_depth.setdefault(cell["density_iterations"], cell["metrics"])
    # The offline baseline gets denser with each Chain of Density step.
    assert (
        by_depth[1]["entity_density"]
        < by_depth[2]["entity_density"]
        < by_depth[3]["entity_density"]
    )
    assert by_depth[3]["identifier_coverage"] > 0.5

    rows = query(
        url,
        "SELECT t.input_data, t.output_data, e.metric_name, e.score FROM traces t "
        "JOIN evaluations e ON e.trace_id = t.id "
        "WHERE e.metric_name IN ('identifier_coverage', 'entity_density') AND t.run_id IS NOT NULL",
    )
    assert len(rows) == 2 * 6 * 103
    differs = 0
    for raw_input, raw_output, metric, score in rows:
        given = json.loads(raw_input) if isinstance(raw_input, str) else raw_input
        output = json.loads(raw_output) if isinstance(raw_output, str) else raw_output
        assert given["language"] == "dart"
        expected = get_metric(metric)(given["code"], output["summary"], None, "dart").value
        assert score == expected
        python_reading = get_metric(metric)(given["code"], output["summary"], None, "python").value
        differs += python_reading != expected
        assert "String" not in entities(given["code"], "dart")
    assert differs > 0  # reading the code as Python would have given other numbers


def test_the_gemini_variant_is_the_same_experiment_with_gemini(tmp_path: Path) -> None:
    offline = yaml.safe_load((ROOT / "experiments/flutter-density.yaml").read_text())
    gemini = yaml.safe_load((ROOT / "experiments/flutter-density-gemini.yaml").read_text())
    assert gemini["dataset"] == offline["dataset"] == "datasets/flutter-samples.jsonl"
    assert gemini["matrix"]["prompt"] == offline["matrix"]["prompt"]
    assert gemini["matrix"]["density_iterations"] == offline["matrix"]["density_iterations"]
    assert gemini["matrix"]["model"] == ["gemini-2.5-flash"]
    assert gemini["judge"]["model"].startswith("gemini")
    dry = run_cli(
        "run",
        "experiments/flutter-density-gemini.yaml",
        "--dry-run",
        "--json",
        db_url=f"sqlite:///{tmp_path / 'dry.db'}",
    )
    assert dry.returncode == 0, dry.stderr
