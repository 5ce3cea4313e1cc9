"""What judges return (:class:`Judgement`, :class:`PairwiseJudgement`) and the protocols every
judge keeps (:class:`Judge` scores one summary, :class:`PairwiseJudge` compares two)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from codi_eval.models.base import Generation

JudgementStatus = Literal["ok", "failed"]
#: A pairwise verdict in the judge's terms: "A" is the summary shown first.
Position = Literal["A", "B", "tie"]
#: A pairwise verdict in the caller's terms: summary ``a`` or ``b``, whatever the order.
Preference = Literal["a", "b", "tie"]


@dataclass
class Judgement:
    """One judge's verdict on one summary (or piece of code).

    ``score`` is normalised to [0, 1] when ``status == "ok"`` and is ``None`` when the
    judge's answer could not be read or was off its declared scale (``status ==
    "failed"``); a failed judgement keeps the judge's ``raw`` text so the trace shows what
    went wrong. ``scale`` names the scale the number was read on: the prompt's declared one
    ("0-1", "1-5"), or one the answer stated ("0-10" for "8/10", "0-100" for "80%");
    ``meta["declared_scale"]`` holds the declaration. ``generation`` carries the model call
    (usage, latency, cost) for the tracer; it is ``None`` for judges that call no model.
    """

    metric_name: str
    score: float | None
    reason: str | None
    status: JudgementStatus
    raw: str | None = None
    scale: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    generation: Generation | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@runtime_checkable
class Judge(Protocol):
    """Anything that scores a summary of code: an LLM judge or the offline heuristic."""

    metric_name: str
    prompt_ref: str | None

    async def judge(
        self, *, code: str, summary: str, instruction: str, **extra: Any
    ) -> Judgement: ...


@dataclass
class OrderVerdict:
    """One pairwise call: which summary was shown first and what the judge answered.

    ``winner`` is in the judge's terms (A = shown first); ``preferred`` in the caller's
    (summary a or b). Both are ``None`` when the answer could not be read (``failed``).
    """

    shown_first: Literal["a", "b"]
    winner: Position | None
    reason: str | None
    status: JudgementStatus
    raw: str | None = None
    error: str | None = None
    generation: Generation | None = None

    @property
    def preferred(self) -> Preference | None:
        if self.winner is None:
            return None
        if self.winner == "tie":
            return "tie"
        first_won = self.winner == "A"
        shown_second: Literal["a", "b"] = "b" if self.shown_first == "a" else "a"
        return self.shown_first if first_won else shown_second


@dataclass
class PairwiseJudgement:
    """Two summaries of one item judged twice, the order swapped.

    ``verdict`` is the preference both orders agree on; when they disagree the verdict is
    a tie and ``consistent`` is False (position inconsistency). ``verdict`` and
    ``consistent`` are ``None`` when either call failed (``status == "failed"``).
    """

    verdict: Preference | None
    consistent: bool | None
    orders: list[OrderVerdict]
    status: JudgementStatus
    reason: str | None = None

    @property
    def score(self) -> float | None:
        """b's preference on [0, 1]: 1.0 b is better, 0.5 a tie, 0.0 a is better."""
        return None if self.verdict is None else {"a": 0.0, "tie": 0.5, "b": 1.0}[self.verdict]

    @property
    def sign(self) -> int | None:
        """+1 b is better, 0 a tie, -1 a is better (the paired test's per-item difference)."""
        return None if self.verdict is None else {"a": -1, "tie": 0, "b": 1}[self.verdict]


@runtime_checkable
class PairwiseJudge(Protocol):
    """Anything that compares two summaries of the same code, both orders."""

    metric_name: str
    prompt_ref: str | None

    async def judge_order(
        self,
        *,
        code: str,
        first: str,
        second: str,
        shown_first: Literal["a", "b"],
        instruction: str,
        **extra: Any,
    ) -> OrderVerdict: ...

    async def compare(
        self, *, code: str, summary_a: str, summary_b: str, instruction: str, **extra: Any
    ) -> PairwiseJudgement: ...
