"""The Opik exporter, driving the real opik SDK against the local Opik server."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from opik.id_helpers import generate_id as uuid7

from codi_eval.opik_export import OpikExporter, OpikExportError
from codi_eval.store.records import EvaluationRecord, SpanRecord, TraceRecord, TraceTree
from tests.servers.opik_server import OpikServer

PROJECT = "codi-test"

# httpx, called by the SDK, warns about its own verify=<str>; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:`verify=<str>` is deprecated:DeprecationWarning")


@pytest.fixture
def opik_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[OpikServer]:
    server = OpikServer().start_in_thread()
    config = tmp_path / "opik.config"
    config.write_text("[opik]\n")  # keep a developer's ~/.opik.config out of the tests
    monkeypatch.setenv("OPIK_CONFIG_PATH", str(config))
    monkeypatch.setenv("OPIK_URL_OVERRIDE", server.url)
    monkeypatch.setenv("OPIK_SENTRY_ENABLE", "false")
    monkeypatch.setenv("OPIK_ANALYTICS_ENABLE", "false")
    monkeypatch.delenv("OPIK_API_KEY", raising=False)
    monkeypatch.delenv("OPIK_WORKSPACE", raising=False)
    monkeypatch.delenv("OPIK_PROJECT_NAME", raising=False)
    yield server
    server.stop()
    # Every call the SDK made must be one the fake speaks, or a test could pass on 404s.
    assert server.unknown_requests == []


@pytest.fixture
def exporter(opik_server: OpikServer) -> Iterator[OpikExporter]:
    exporter = OpikExporter(project_name=PROJECT, call_timeout_s=10)
    yield exporter
    exporter.close(timeout_s=2)


def _trace_tree() -> TraceTree:
    """A run as the store hands it over: CoD with nested llm spans, a judge, an error."""
    trace_id, cod, iteration, llm_call, judge, judge_llm, metric = (uuid7() for _ in range(7))
    start = datetime.fromisoformat("2026-11-24T10:00:00+00:00")
    end = datetime.fromisoformat("2026-11-24T10:00:09+00:00")

    def span(id: Any, parent: Any, name: str, type: str, **more: Any) -> SpanRecord:
        return SpanRecord(
            id=id,
            trace_id=trace_id,
            parent_span_id=parent,
            name=name,
            type=type,
            start_time=start,
            end_time=end,
            **more,
        )

    def evaluation(name: str, score: float | None, reason: str | None, span_id: Any) -> Any:
        return EvaluationRecord(
            id=uuid7(),
            trace_id=trace_id,
            metric_name=name,
            score=score,
            reason=reason,
            span_id=span_id,
            status="ok" if score is not None else "failed",
        )

    return TraceTree(
        export_project=PROJECT,
        trace=TraceRecord(
            id=trace_id,
            name="summarize",
            trace_type="experiment_item",
            start_time=start,
            end_time=end,
            input_data={"code": "def add(a, b):\n    return a + b"},
            output_data={"summary": "Adds two numbers."},
            meta_data={"cell": "p1-d2-offline"},
            tags=["cod"],
        ),
        spans=[
            span(cod, None, "chain_of_density", "general"),
            span(iteration, cod, "iteration 1", "general"),
            span(
                llm_call,
                iteration,
                "generate_content: gemini-2.0-flash",
                "llm",
                model="gemini-2.0-flash",
                provider="gemini",
                prompt_tokens=120,
                completion_tokens=30,
                total_tokens=150,
                cost=0.00042,
                input_data="prompt text",
                output_data={"text": "Adds two numbers."},
            ),
            span(judge, None, "judge", "judge"),
            span(
                judge_llm,
                judge,
                "judge call",
                "llm",
                model="gemini-2.0-flash",
                provider="google_ai",
                prompt_tokens=200,
                completion_tokens=10,
                cost=0.0001,
                error={"type": "ValueError", "message": "ValueError: judge answer was not JSON"},
            ),
            span(metric, None, "rouge_l", "metric"),
        ],
        evaluations=[
            evaluation("summary_quality", 4.0, "clear", judge),
            evaluation("rouge_l", 0.31, None, metric),
            evaluation("relevance", None, "unparseable", judge),
        ],
    )


def _id(tree: TraceTree) -> str:
    return str(tree.trace.id)


def _span_ids(tree: TraceTree) -> set[str]:
    return {str(s.id) for s in tree.spans}


def test_trace_tree_arrives_with_our_ids_nesting_usage_and_cost(
    exporter: OpikExporter, opik_server: OpikServer
) -> None:
    tree = _trace_tree()
    result = exporter.export_trace_tree(tree)

    assert exporter.flush(timeout_s=10), exporter.last_flush_problems
    trace_id = _id(tree)
    assert result.trace_id == trace_id
    trace = opik_server.traces[trace_id]
    assert trace["name"] == "summarize"
    assert trace["project_name"] == PROJECT
    assert trace["input"] == {"code": "def add(a, b):\n    return a + b"}
    assert trace["metadata"] == {"trace_type": "experiment_item", "cell": "p1-d2-offline"}
    assert trace["start_time"].startswith("2026-11-24T10:00:00")
    assert trace["end_time"].startswith("2026-11-24T10:00:09")

    spans = opik_server.spans_of(trace_id)
    assert set(spans) == _span_ids(tree)
    by_name = {s["name"]: s for s in spans.values()}
    cod, iteration = by_name["chain_of_density"], by_name["iteration 1"]
    llm = by_name["generate_content: gemini-2.0-flash"]
    assert "parent_span_id" not in cod
    assert iteration["parent_span_id"] == cod["id"]
    assert llm["parent_span_id"] == iteration["id"]  # the grandchild keeps its chain
    assert llm["type"] == "llm"
    assert llm["model"] == "gemini-2.0-flash"
    assert llm["provider"] == "google_ai"
    assert {k: llm["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")} == {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
    }
    assert llm["total_estimated_cost"] == pytest.approx(0.00042)
    assert llm["input"] == {"value": "prompt text"}

    judge_llm = by_name["judge call"]
    assert judge_llm["usage"]["total_tokens"] == 210  # filled in when the store had none
    assert judge_llm["error_info"]["message"] == "ValueError: judge answer was not JSON"
    assert by_name["judge"]["type"] == "general"
    assert by_name["judge"]["metadata"]["codi_span_type"] == "judge"
    assert by_name["rouge_l"]["type"] == "general"
    assert by_name["rouge_l"]["metadata"]["codi_span_type"] == "metric"


def test_evaluations_arrive_as_trace_feedback_scores_and_failed_ones_are_skipped(
    exporter: OpikExporter, opik_server: OpikServer
) -> None:
    tree = _trace_tree()
    result = exporter.export_trace_tree(tree)

    assert exporter.flush(timeout_s=10), exporter.last_flush_problems
    scores = opik_server.trace_scores(_id(tree))
    assert set(scores) == {"summary_quality", "rouge_l"}
    assert scores["summary_quality"]["value"] == 4.0
    assert scores["summary_quality"]["reason"] == "clear"
    assert scores["rouge_l"]["value"] == pytest.approx(0.31)
    assert result.scores == ("summary_quality", "rouge_l")
    assert result.skipped == ("relevance: no score (failed judgement)",)


def test_sending_the_same_tree_twice_keeps_one_copy(
    exporter: OpikExporter, opik_server: OpikServer
) -> None:
    tree = _trace_tree()
    exporter.export_trace_tree(tree)
    assert exporter.flush(timeout_s=10), exporter.last_flush_problems
    exporter.export_trace_tree(tree)
    assert exporter.flush(timeout_s=10), exporter.last_flush_problems

    assert list(opik_server.traces) == [_id(tree)]
    assert len(opik_server.spans) == len(tree.spans)
    assert len(opik_server.trace_scores(_id(tree))) == 2
    # The second send really reached the server and was folded in by id.
    assert opik_server.duplicates["traces"] == 1
    assert opik_server.duplicates["spans"] == len(tree.spans)


def test_dataset_items_keep_our_ids_and_a_reexport_does_not_duplicate(
    exporter: OpikExporter, opik_server: OpikServer
) -> None:
    items = [
        # "source" and "description" are DatasetItem fields in the SDK: they must stay data.
        {
            "id": uuid7(),
            "data": {"code": "def f(): pass", "source": "stdlib/os.py", "description": "no-op"},
        },
        {"id": uuid7(), "data": {"code": "def g(): return 1", "reference": "Returns one."}},
        # Same data as the first: distinct items, which the SDK's content dedup would merge.
        {
            "id": uuid7(),
            "data": {"code": "def f(): pass", "source": "stdlib/os.py", "description": "no-op"},
        },
    ]
    first = exporter.export_dataset("stdlib-functions", items)
    second = exporter.export_dataset("stdlib-functions", items)

    stored = opik_server.dataset_items["stdlib-functions"]
    assert set(stored) == {item["id"] for item in items}
    for item in items:
        assert stored[item["id"]]["data"] == item["data"]
    assert first.item_ids == second.item_ids == tuple(item["id"] for item in items)
    assert list(opik_server.datasets) == ["stdlib-functions"]
    assert opik_server.duplicates["datasets"] == 0
    assert opik_server.duplicates["dataset_items"] == len(items)  # upserted, not added


def test_prompt_export_reuses_an_identical_version(
    exporter: OpikExporter, opik_server: OpikServer
) -> None:
    v1 = exporter.export_prompt("cod_iteration", "Summarize {{code}}", version_label="1")
    v2 = exporter.export_prompt("cod_iteration", "Densify {{summary}}", version_label="2")
    v1_again = exporter.export_prompt("cod_iteration", "Summarize {{code}}", version_label="1")

    assert v1.created and v2.created and not v1_again.created
    assert v1_again.version_id == v1.version_id != v2.version_id
    versions = opik_server.prompt_versions["cod_iteration"]
    assert [v["template"] for v in versions] == ["Summarize {{code}}", "Densify {{summary}}"]
    assert versions[0]["metadata"] == {"codi_version": "1"}
    assert opik_server.duplicates["prompt_versions"] == 0


def _experiment_fixture(exporter: OpikExporter) -> tuple[list[dict[str, str]], dict[str, Any]]:
    items = [{"id": uuid7(), "data": {"code": f"def f{i}(): pass"}} for i in range(2)]
    exporter.export_dataset("ds", items)
    links = []
    for item in items:
        tree = _trace_tree()
        exporter.export_trace_tree(tree)
        links.append({"dataset_item_id": item["id"], "trace_id": _id(tree)})
    prompt = {"name": "cod_iteration", "template": "Summarize {{code}}", "version_label": "1"}
    return links, prompt


def test_experiment_arrives_with_config_items_and_linked_prompt_version(
    exporter: OpikExporter, opik_server: OpikServer
) -> None:
    links, prompt = _experiment_fixture(exporter)
    config = {"prompt": "cod_iteration@1", "density_iterations": 2, "model": "offline"}
    experiment_id = uuid7()

    result = exporter.export_experiment(
        "cod-sweep/p1-d2-offline", "ds", config, [prompt], links, experiment_id, project=PROJECT
    )
    assert exporter.flush(timeout_s=10), exporter.last_flush_problems

    assert result.experiment_id == experiment_id and result.created
    experiment = opik_server.experiments[experiment_id]
    assert experiment["name"] == "cod-sweep/p1-d2-offline"
    assert experiment["dataset_name"] == "ds"
    assert {k: experiment["metadata"][k] for k in config} == config
    version = opik_server.prompt_versions["cod_iteration"][0]
    assert experiment["prompt_versions"] == [{"id": version["id"]}]
    assert experiment["metadata"]["prompts"] == {"cod_iteration": "Summarize {{code}}"}
    stored = {
        (i["dataset_item_id"], i["trace_id"])
        for i in opik_server.experiment_items.values()
        if i["experiment_id"] == experiment_id
    }
    assert stored == {(link["dataset_item_id"], link["trace_id"]) for link in links}


def test_experiment_retried_with_the_same_id_adds_nothing(
    exporter: OpikExporter, opik_server: OpikServer
) -> None:
    links, prompt = _experiment_fixture(exporter)
    experiment_id = uuid7()
    exporter.export_experiment("e/cell", "ds", {"n": 1}, [prompt], links[:1], experiment_id)
    assert exporter.flush(timeout_s=10), exporter.last_flush_problems

    retry = exporter.export_experiment("e/cell", "ds", {"n": 1}, [prompt], links, experiment_id)
    assert exporter.flush(timeout_s=10), exporter.last_flush_problems

    assert not retry.created
    assert (retry.items_sent, retry.items_already_present) == (1, 1)
    assert list(opik_server.experiments) == [experiment_id]
    assert len(opik_server.experiment_items) == 2
    assert len(opik_server.prompt_versions["cod_iteration"]) == 1
    assert opik_server.duplicates["experiments"] == 0


def test_experiment_without_an_id_is_found_by_name_on_retry(
    exporter: OpikExporter, opik_server: OpikServer
) -> None:
    links, prompt = _experiment_fixture(exporter)
    first = exporter.export_experiment("e/by-name", "ds", {}, [prompt], links)
    second = exporter.export_experiment("e/by-name", "ds", {}, [prompt], links)
    assert exporter.flush(timeout_s=10), exporter.last_flush_problems

    assert first.experiment_id == second.experiment_id
    assert (second.created, second.items_sent) == (False, 0)
    assert len(opik_server.experiments) == 1
    assert len(opik_server.experiment_items) == 2


def test_server_answering_503_is_reported_as_failure_within_the_timeout(
    exporter: OpikExporter, opik_server: OpikServer
) -> None:
    opik_server.set_down("503")
    exporter.export_trace_tree(_trace_tree())

    started = time.monotonic()
    assert exporter.flush(timeout_s=3) is False
    assert time.monotonic() - started < 4.5
    assert exporter.last_flush_problems

    exporter = OpikExporter(project_name=PROJECT, call_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(OpikExportError, match="export dataset"):
        exporter.export_dataset("ds", [{"id": uuid7(), "data": {"x": 1}}])
    assert time.monotonic() - started < 3.5
    assert "ds" not in opik_server.datasets
    exporter.close(timeout_s=1)


def test_api_key_reaches_the_server_but_never_the_logs(
    opik_server: OpikServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-opik-test-0123456789"
    exporter = OpikExporter(api_key=secret, workspace="team-a", project_name=PROJECT)
    exporter.export_prompt("p", "Summarize {{code}}")
    opik_server.set_down("503")
    with caplog.at_level(logging.DEBUG), pytest.raises(OpikExportError) as raised:
        OpikExporter(api_key=secret, workspace="team-a", call_timeout_s=1).export_prompt(
            "p", "other"
        )
    exporter.export_trace_tree(_trace_tree())
    with caplog.at_level(logging.DEBUG):
        assert exporter.flush(timeout_s=1) is False
    exporter.close(timeout_s=1)

    sent = opik_server.requests[0]["headers"]
    assert sent["Authorization"] == secret  # raw key, as Opik expects, no "Bearer"
    assert sent["Comet-Workspace"] == "team-a"
    assert secret not in str(raised.value)
    assert secret not in caplog.text
    assert secret not in " ".join(exporter.last_flush_problems)


@pytest.mark.slow
async def test_refused_connection_is_not_claimed_as_sent_and_a_resend_recovers() -> None:
    # The SDK parks batches that hit a refused connection and still reports flush() as
    # successful; the exporter must read back and say no. Slow (~15 s): the SDK retries a
    # refused connection 3 times, 5 s and 6 s apart, before parking the batch.
    async with OpikServer() as server:
        with pytest.MonkeyPatch.context() as env:
            for name, value in {
                "OPIK_URL_OVERRIDE": server.url,
                "OPIK_SENTRY_ENABLE": "false",
                "OPIK_ANALYTICS_ENABLE": "false",
                # After an outage the SDK parks even new messages unsent until its health
                # monitor pings the server again (default every 10 s); ping faster here.
                "OPIK_CONNECTION_MONITOR_PING_INTERVAL": "1",
            }.items():
                env.setenv(name, value)
            exporter = OpikExporter(project_name=PROJECT)
            tree = _trace_tree()
            server.set_down("refuse")
            exporter.export_trace_tree(tree)

            started = time.monotonic()
            assert exporter.flush(timeout_s=15) is False
            assert time.monotonic() - started < 16.5
            assert _id(tree) not in server.traces

            server.set_up()
            # What the outbox does: export the unsent row again on each pass until confirmed.
            deadline = time.monotonic() + 20
            confirmed = False
            while not confirmed and time.monotonic() < deadline:
                exporter.export_trace_tree(tree)
                confirmed = exporter.flush(timeout_s=5)
            assert confirmed, exporter.last_flush_problems
            assert list(server.traces) == [_id(tree)]
            assert set(server.spans_of(_id(tree))) == _span_ids(tree)
            exporter.close(timeout_s=5)
        assert server.unknown_requests == []
