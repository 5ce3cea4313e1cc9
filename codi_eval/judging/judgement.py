"""What a judge returns: :class:`Judgement`, and the :class:`Judge` protocol every judge keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from codi_eval.models.base import Generation

JudgementStatus = Literal["ok", "failed"]


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
