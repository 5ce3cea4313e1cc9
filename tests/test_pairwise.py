"""The pairwise judge: both orders, flips are ties, win rate with an interval, position
consistency, the paired test, Bradley-Terry, storage, cache and Opik mirroring."""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codi_eval.analysis.pairwise import bradley_terry, summarise_pairs, wilson_interval
from codi_eval.judging import (
    PAIRWISE_SCHEMA,
    LLMPairwiseJudge,
    OrderVerdict,
    combine_orders,
    load_judge_prompt,
    parse_pairwise_answer,
)
from codi_eval.models.base import GenerateRequest
from codi_eval.models.offline import OfflineModel
from tests.cli_helpers import ROOT, run_cli
from tests.cli_helpers import query as store_rows
from tests.servers.gemini_server import GeminiServer
from tests.servers.opik_server import OpikServer

D1 = "cod_iteration@1/d1/offline"
D3 = "cod_iteration@1/d3/offline"
_SHOWN = re.compile(r"Summary A:\n(.*?)\n\nSummary B:\n(.*?)\n\nAnswer with JSON", re.S)


def names(summary: str) -> int:
    return summary.count("`") // 2


def a_biased(prompt: str) -> str:
    """A judge that favours position A: B wins only when it names 5 or more identifiers
    more than A does."""
    match = _SHOWN.search(prompt)
    assert match, prompt
    first, second = match.group(1), match.group(2)
    winner = "B" if names(second) - names(first) >= 5 else "A"
    return json.dumps({"winner": winner, "reason": f"{winner} reads better"})


# --- the answer and the two orders ---------------------------------------------------------


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_any_answer_never_raises_and_an_unreadable_one_says_why(text: str) -> None:
    winner, _reason, error = parse_pairwise_answer(text)
    assert winner in (None, "A", "B", "tie")
    assert (winner is None) == (error is not None)


@pytest.mark.parametrize(
    ("raw", "winner"),
    [
        ('{"winner": "A", "reason": "names the calls"}', "A"),
        ('```json\n{"winner": "b", "reason": "x"}\n```', "B"),
        ('{"Winner": "Summary B"}', "B"),
        ("{'winner': 'tie', 'reason': 'same'}", "tie"),
        ('Both are close.\n{"winner": "equal"}', "tie"),
        ("After comparing, Winner: A", "A"),
    ],
)
def test_verdicts_are_read_in_their_common_shapes(raw: str, winner: str) -> None:
    assert parse_pairwise_answer(raw)[0] == winner


@pytest.mark.parametrize(
    "raw", ["", "Summary A is better.", '{"winner": "C"}', '{"winner": 1}', '{"reason": "x"}']
)
def test_anything_but_a_b_or_tie_is_a_failed_verdict(raw: str) -> None:
    winner, _reason, error = parse_pairwise_answer(raw)
    assert winner is None and error


def order(shown_first: str, winner: str | None) -> OrderVerdict:
    status = "ok" if winner else "failed"
    return OrderVerdict(shown_first, winner, "r", status, error=None if winner else "bad")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("first", "second", "verdict", "consistent"),
    [
        ("A", "B", "a", True),  # a shown first wins; then b shown first loses: a both times
        ("B", "A", "b", True),
        ("tie", "tie", "tie", True),
        ("A", "A", "tie", False),  # the judge always picks the first: a flip, a tie
        ("B", "B", "tie", False),
        ("A", "tie", "tie", False),
        ("A", None, None, None),
    ],
)
def test_a_verdict_that_flips_with_the_order_is_a_tie(
    first: str, second: str | None, verdict: str | None, consistent: bool | None
) -> None:
    judgement = combine_orders(order("a", first), order("b", second))
    assert (judgement.verdict, judgement.consistent) == (verdict, consistent)
    assert judgement.status == ("failed" if verdict is None else "ok")


async def test_the_offline_model_answers_pairwise_prompts_the_same_in_either_order() -> None:
    code = (
        "def retry_fetch(url, attempts=3):\n"
        "    for attempt in range(attempts):\n"
        "        try:\n"
        "            return urlopen(url).read()\n"
        "        except ConnectionError:\n"
        "            time.sleep(2 ** attempt)\n"
        '    raise RuntimeError("gave up")\n'
    )
    terse = "Fetches a thing."
    rich = (
        "`retry_fetch` calls `urlopen` on `url` up to `attempts` times, sleeps on "
        "`ConnectionError` and finally raises `RuntimeError`."
    )
    judge = LLMPairwiseJudge(OfflineModel(), load_judge_prompt("pairwise_judge@1"))
    judgement = await judge.compare(
        code=code, summary_a=terse, summary_b=rich, instruction="Explain it."
    )
    assert (judgement.verdict, judgement.consistent) == ("b", True)
    assert all("not a language model" in (o.reason or "") for o in judgement.orders)
    request = GenerateRequest(prompt="x", context={"task": "pairwise_judge", "code": code,
                              "summary_a": rich, "summary_b": rich})  # fmt: skip
    assert json.loads(OfflineModel().respond(request))["winner"] == "tie"
    assert PAIRWISE_SCHEMA["properties"]["winner"]["enum"] == ["A", "B", "tie"]


# --- statistics ----------------------------------------------------------------------------


def verdicts(signs: list[float], cell_a: str = "x", cell_b: str = "y") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cell_a": cell_a,
            "cell_b": cell_b,
            "item_key": [f"i{k}" for k in range(len(signs))],
            "status": "ok",
            "sign": signs,
            "consistent": [s != 0 for s in signs],
        }
    )


def test_win_rate_counts_ties_half_and_uses_the_paired_test() -> None:
    result = summarise_pairs(verdicts([1.0] * 14 + [0.0] * 4 + [-1.0] * 2), "x", "y")
    assert (result.wins_b, result.ties, result.wins_a, result.judged) == (14, 4, 2, 20)
    assert result.win_rate == pytest.approx((14 + 2) / 20)
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low < result.win_rate < result.ci_high
    assert result.p_value is not None and result.p_value < 0.01
    assert result.test["metric"].startswith("pairwise verdict")
    assert result.position_consistency == pytest.approx(16 / 20)
    assert result.inconsistent == 4


def test_the_wilson_interval_matches_known_values() -> None:
    low, high = wilson_interval(20, 20)
    assert (round(low, 4), high) == (0.8389, 1.0)
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)


def test_bradley_terry_recovers_the_order_of_simulated_cells() -> None:
    rng = np.random.default_rng(3)
    truth = {"weak": -1.0, "mid": 0.0, "strong": 1.0}
    rows = []
    for item in range(60):
        for a, b in [("weak", "mid"), ("weak", "strong"), ("mid", "strong")]:
            p_b = 1 / (1 + np.exp(truth[a] - truth[b]))
            rows.append((a, b, f"i{item}", 1.0 if rng.random() < p_b else -1.0))
    frame = pd.DataFrame(rows, columns=["cell_a", "cell_b", "item_key", "sign"])
    frame["status"] = "ok"
    ranking = bradley_terry(frame, list(truth), n_boot=200, seed=1)
    assert [r.cell for r in ranking] == ["strong", "mid", "weak"]
    for r in ranking:
        assert r.ci_low is not None and r.ci_high is not None
        assert r.ci_low <= r.strength <= r.ci_high
        assert r.ci_low - 0.5 < truth[r.cell] < r.ci_high + 0.5
    assert sum(r.strength for r in ranking) == pytest.approx(0.0, abs=1e-6)
    assert not any(r.prior_bound for r in ranking)


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture
def quickstart(store_url: str) -> str:
    result = run_cli("run", "experiments/quickstart.yaml", "--json", db_url=store_url)
    assert result.returncode == 0, result.stderr
    return store_url


def summaries(db: str) -> dict[str, dict[str, str]]:
    by_item: dict[str, dict[str, str]] = defaultdict(dict)
    for cell, item, summary in store_rows(
        db,
        "select c.key, i.item_key, r.summary from runs r join experiment_cells c on "
        "c.id = r.cell_id join dataset_items i on i.id = r.dataset_item_id",
    ):
        by_item[item][cell] = summary
    return by_item


def test_compare_pairwise_on_an_a_biased_gemini_judge_reports_flips_as_ties(
    quickstart: str,
) -> None:
    db = quickstart
    server = GeminiServer(lambda body: a_biased(server.prompt_of(body))).start_in_thread()
    env = {"GEMINI_API_KEY": "test-key", "GOOGLE_GEMINI_BASE_URL": server.base_url}
    args = ("compare", "quickstart", "--a", D1, "--b", D3, "--pairwise")
    try:
        result = run_cli(*args, "--judge", "gemini-2.5-flash", "--json", db_url=db, env=env)
        calls = len(server.requests)
        again = run_cli(*args, "--judge", "gemini-2.5-flash", db_url=db, env=env)
        calls_again = len(server.requests) - calls
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (c,) = report["comparisons"]
    # What the biased judge must have done, worked out from the stored summaries.
    expected = {"b": 0, "a": 0, "flip": 0}
    for cells in summaries(db).values():
        first = names(cells[D3]) - names(cells[D1]) >= 5  # a (d1) shown first: B (d3) wins?
        second = names(cells[D1]) - names(cells[D3]) >= 5  # d3 shown first: B (d1) wins?
        verdict_first = "b" if first else "a"
        verdict_second = "a" if second else "b"
        key = verdict_first if verdict_first == verdict_second else "flip"
        expected[key] += 1
    assert 0 < expected["flip"] < 20 and expected["b"] > 0  # the data make a real test
    assert (c["judged"], c["failed"], calls) == (20, 0, 40)
    schema = server.requests[0].json["generationConfig"]["responseSchema"]
    assert schema["properties"]["winner"]["enum"] == ["A", "B", "tie"]
    assert (c["wins_b"], c["wins_a"]) == (expected["b"], expected["a"])
    assert c["ties"] == c["inconsistent"] == expected["flip"]
    assert c["position_consistency"] == pytest.approx(1 - expected["flip"] / 20)
    assert c["position_consistency"] < 1
    assert c["win_rate"] == pytest.approx((expected["b"] + expected["flip"] / 2) / 20)
    assert c["ci_low"] < c["win_rate"] < c["ci_high"]
    assert c["p_value"] is not None and c["test"]["n"] == 20
    assert report["judge"] == "gemini-2.5-flash" and report["prompt"] == "pairwise_judge@1"
    assert report["ranking"] is None
    # Asked again: every call is a cache hit, and the same verdicts come back.
    assert again.returncode == 0, again.stderr
    assert calls_again == 0
    assert f"position consistency {c['position_consistency']:.0%}" in again.stdout
    # Stored: one trace per pair and two evaluations naming both runs, per comparison.
    traces = store_rows(db, "select id, run_id from traces where trace_type = 'pairwise_judgement'")
    assert len(traces) == 40 and all(run is None for _, run in traces)
    rows = store_rows(
        db,
        "select e.metric_name, e.score, e.meta_data from evaluations e join traces t on "
        "t.id = e.trace_id where t.trace_type = 'pairwise_judgement'",
    )
    metas = [(m, s, json.loads(d) if isinstance(d, str) else d) for m, s, d in rows]
    first = [x for x in metas if x[2]["comparison_id"] == report["comparison_id"]]
    preference = [x for x in first if x[0] == "pairwise_preference"]
    consistency = [x for x in first if x[0] == "position_consistency"]
    assert len(preference) == len(consistency) == 20
    runs = {str(uuid.UUID(str(r[0]))): r[1] for r in store_rows(
        db, "select r.id, c.key from runs r join experiment_cells c on c.id = r.cell_id")}  # fmt: skip
    for _metric, score, meta in preference:
        assert (runs[meta["run_a"]], runs[meta["run_b"]]) == (D1, D3)
        assert [o["shown_first"] for o in meta["orders"]] == ["a", "b"]
        assert score == {"a": 0.0, "tie": 0.5, "b": 1.0}[meta["verdict"]]
        assert (meta["verdict"] == "tie") == (meta["consistent"] is False)
    assert sum(s for _, s, _ in consistency) == 20 - expected["flip"]
    # The runs' own scores do not see the pairwise verdicts.
    own = store_rows(
        db,
        "select count(*) from evaluations e join runs r on r.trace_id = e.trace_id "
        "where e.metric_name like 'pairwise%' or e.metric_name = 'position_consistency'",
    )
    assert own[0][0] == 0


def test_compare_pairwise_offline_ranks_every_cell_with_bradley_terry(quickstart: str) -> None:
    result = run_cli("compare", "quickstart", "--pairwise", "--json", db_url=quickstart)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["judge"] == "offline" and len(report["comparisons"]) == 6
    for c in report["comparisons"]:
        assert c["position_consistency"] == 1.0  # a program judges each summary alone
    ranking = {r["cell"]: r for r in report["ranking"]}
    assert set(ranking) == set(summaries(quickstart)["heapq:heappop"])
    d3 = [r["strength"] for k, r in ranking.items() if "/d3/" in k]
    d1 = [r["strength"] for k, r in ranking.items() if "/d1/" in k]
    assert min(d3) > max(d1)  # denser summaries win, as every other metric says
    # Every d3 cell beats every d1 cell on every item: no finite strength fits that, and
    # the ranking says so instead of pretending to know how far apart they are.
    assert all(r["prior_bound"] for r in ranking.values())
    assert "Bradley-Terry" in report["ranking_method"]


def test_compare_refuses_bad_pairwise_input(quickstart: str) -> None:
    for args, field in [
        (("--pairwise", "--a", D1), "--b"),
        (("--pairwise", "--a", D1, "--b", "nope/d1/offline"), "cell"),
        (("--pairwise", "--a", D1, "--b", D1), "cell"),
        (("--pairwise", "--metric", "rouge_l", "--a", D1, "--b", D3), "--metric"),
        (("--judge", "offline", "--a", D1, "--b", D3), "--judge"),
        (("--a", D1), "--b"),
    ]:
        result = run_cli("compare", "quickstart", *args, db_url=quickstart)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert field in result.stderr


def test_a_pairwise_spec_judges_no_summary_alone_and_compare_goes_pairwise(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    spec = (ROOT / "experiments" / "quickstart.yaml").read_text()
    spec = spec.replace("name: quickstart", "name: pairwise-quick")
    spec = spec.replace(
        "judge: {model: offline, prompt: summary_judge@1}",
        "judge: {model: offline, mode: pairwise}",
    )
    spec = spec.replace("dataset: datasets/", f"dataset: {ROOT}/datasets/")
    path = tmp_path / "pairwise.yaml"
    path.write_text(spec)
    run = run_cli("run", str(path), "--json", db_url=db)
    assert run.returncode == 0, run.stderr
    assert (
        store_rows(db, "select count(*) from evaluations where metric_name = 'summary_quality'")[0][
            0
        ]
        == 0
    )
    result = run_cli("compare", "pairwise-quick", "--a", D1, "--b", D3, "--json", db_url=db)
    assert result.returncode == 0, result.stderr
    (c,) = json.loads(result.stdout)["comparisons"]
    assert c["judged"] == 20 and c["win_rate"] == 1.0


def test_pairwise_verdicts_are_mirrored_to_opik_as_feedback_scores(
    quickstart: str, tmp_path: Path
) -> None:
    server = OpikServer().start_in_thread()
    env = {
        "OPIK_URL_OVERRIDE": server.url,
        "OPIK_WORKSPACE": "default",
        "OPIK_CONNECTION_MONITOR_PING_INTERVAL": "1",
    }
    try:
        result = run_cli(
            "compare", "quickstart", "--a", D1, "--b", D3, "--pairwise", "--limit", "3",
            db_url=quickstart, env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        rows = store_rows(
            quickstart,
            "select e.trace_id, e.metric_name, e.score from evaluations e join traces t on "
            "t.id = e.trace_id where t.trace_type = 'pairwise_judgement'",
        )
        assert len(rows) == 6
        for trace_id, metric, score in rows:
            mirrored = server.trace_scores(str(uuid.UUID(str(trace_id))))
            assert mirrored[metric]["value"] == pytest.approx(score)
        pending = store_rows(quickstart, "select count(*) from opik_outbox where status != 'sent'")
        assert pending[0][0] == 0
    finally:
        server.stop()
