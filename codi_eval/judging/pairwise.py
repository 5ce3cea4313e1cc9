"""The pairwise judge: which of two summaries of the same code is better, asked in both orders.

LLM judges favour a position (REFERENCE.md: GPT-4 keeps its verdict after a swap about 65%
of the time). So every pair is judged twice, once with each summary shown first ("A" is
always the one shown first). A verdict both orders agree on stands; one that changes with
the order is a tie, and the pair counts as position-inconsistent.

The answer is a declared type, :class:`PairwiseAnswer` (``{"winner": "A" | "B" | "tie",
"reason": ...}``), sent as the structured-output schema. The parser is strict about the
verdict: anything but A, B or tie (after trimming case, quotes and a "Summary" prefix) is
a failed call that keeps the raw answer.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from codi_eval.answers import MAX_SEARCH_CHARS, json_values
from codi_eval.judging.judgement import OrderVerdict, PairwiseJudgement, Position
from codi_eval.models.base import GenerateRequest, Model
from codi_eval.templates import render

__all__ = [
    "PAIRWISE_METRIC",
    "PAIRWISE_SCHEMA",
    "LLMPairwiseJudge",
    "PairwiseAnswer",
    "combine_orders",
    "parse_pairwise_answer",
]

PAIRWISE_METRIC = "pairwise_preference"


class PairwiseAnswer(BaseModel):
    """What a pairwise judge answers; its JSON schema is the structured-output schema."""

    winner: Literal["A", "B", "tie"] = Field(
        description='"A" (the summary shown first), "B" (shown second) or "tie"'
    )
    reason: str = Field(description="one or two sentences naming what decided it")


PAIRWISE_SCHEMA: dict[str, Any] = PairwiseAnswer.model_json_schema()

WINNER_KEYS = ("winner", "better", "preferred", "preference", "verdict", "choice", "answer")
_WINNERS: dict[str, Position] = {
    "a": "A",
    "b": "B",
    "tie": "tie",
    "draw": "tie",
    "equal": "tie",
    "neither": "tie",
    "both": "tie",
}
_PREFIX = re.compile(r"^(?:summary|option|candidate)\s+", re.IGNORECASE)
_LABELED = re.compile(
    r"\b(?:winner|better(?:\s+summary)?|verdict|preferred)\b[\"']?\s*(?:[:=]|\bis\b)\s*"
    r"[*\"']*\s*(?:summary\s+)?(A|B|tie)\b",
    re.IGNORECASE,
)


def _winner(value: Any) -> Position | None:
    if not isinstance(value, str):
        return None
    text = _PREFIX.sub("", value.strip().strip("\"'*.` ").strip())
    return _WINNERS.get(text.lower())


def parse_pairwise_answer(raw: str | None) -> tuple[Position | None, str | None, str | None]:
    """``(winner, reason, error)`` from a pairwise judge's answer; never raises.

    ``winner`` is None exactly when the answer holds no readable verdict; ``error`` then
    says why. JSON is found by :mod:`codi_eval.answers`; a labelled prose verdict
    ("Winner: B") is the fallback.
    """
    if raw is None or not raw.strip():
        return None, None, "empty answer"
    try:
        for decoded in json_values(raw):
            obj = decoded.value
            if not isinstance(obj, dict):
                continue
            keyed = {str(k).strip().lower(): v for k, v in obj.items()}
            key = next((k for k in WINNER_KEYS if k in keyed), None)
            if key is None:
                continue
            reason = keyed.get("reason") or keyed.get("explanation") or keyed.get("reasoning")
            reason = (reason.strip() or None) if isinstance(reason, str) else None
            winner = _winner(keyed[key])
            if winner is None:
                return None, reason, f"winner is not A, B or tie: {str(keyed[key])[:80]!r}"
            return winner, reason, None
        labeled = list(_LABELED.finditer(raw[:MAX_SEARCH_CHARS]))
        if labeled:
            found = _winner(labeled[-1].group(1))
            return found, None, None if found else "no verdict found"
        return None, None, "no verdict found"
    except Exception as exc:  # noqa: BLE001 - the promise is "never raises"; keep the evidence
        return None, None, f"parser error: {type(exc).__name__}: {exc}"


def combine_orders(first: OrderVerdict, second: OrderVerdict) -> PairwiseJudgement:
    """The pair's judgement from its two orders (see the module docstring)."""
    orders = [first, second]
    failed = [o for o in orders if o.status != "ok"]
    if failed:
        why = "; ".join(f"{o.shown_first} first: {o.error}" for o in failed)
        return PairwiseJudgement(None, None, orders, "failed", f"unreadable verdict: {why}")
    a, b = first.preferred, second.preferred
    if a == b:
        return PairwiseJudgement(a, True, orders, "ok", first.reason)
    return PairwiseJudgement(
        "tie",
        False,
        orders,
        "ok",
        f"position-inconsistent: {first.shown_first} first preferred {a}, "
        f"{second.shown_first} first preferred {b}; counted as a tie",
    )


class LLMPairwiseJudge:
    """Compares two summaries of one piece of code with a model and a pairwise rubric.

    The template gets ``code``, ``instruction``, ``summary_a`` (shown first) and
    ``summary_b``. Calls run at temperature 0 with :data:`PAIRWISE_SCHEMA`; a
    :class:`~codi_eval.models.base.ModelError` propagates (retrying is the caller's).
    """

    metric_name = PAIRWISE_METRIC

    def __init__(
        self,
        model: Model,
        prompt_template: str,
        prompt_ref: str = "pairwise_judge@1",
        *,
        seed: int | None = None,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if not prompt_template.strip():
            raise ValueError(f"prompt template {prompt_ref} is empty")
        self.model = model
        self.prompt_template = prompt_template
        self.prompt_ref: str | None = prompt_ref
        self.seed = seed
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s

    def render(self, *, code: str, first: str, second: str, instruction: str, **extra: Any) -> str:
        """The exact prompt one order sends (``first`` is shown as summary A)."""
        values = {
            **extra,
            "code": code,
            "instruction": instruction,
            "summary_a": first,
            "summary_b": second,
        }
        return render(self.prompt_template, values, name=self.prompt_ref)

    async def judge_order(
        self,
        *,
        code: str,
        first: str,
        second: str,
        shown_first: Literal["a", "b"],
        instruction: str,
        **extra: Any,
    ) -> OrderVerdict:
        """One call with ``first`` shown as A; an unreadable answer is a failed verdict."""
        prompt = self.render(
            code=code, first=first, second=second, instruction=instruction, **extra
        )
        request = GenerateRequest(
            prompt=prompt,
            json_schema=PAIRWISE_SCHEMA,
            temperature=0.0,
            seed=self.seed,
            max_tokens=self.max_tokens,
            timeout_s=self.timeout_s,
            # Network models never send context; it lets a program-model answer the call.
            context={
                "task": "pairwise_judge",
                "code": code,
                "language": extra.get("language") or "python",
                "instruction": instruction,
                "summary_a": first,
                "summary_b": second,
            },
        )
        generation = await self.model.generate(request)
        winner, reason, error = parse_pairwise_answer(generation.text)
        return OrderVerdict(
            shown_first=shown_first,
            winner=winner,
            reason=reason if winner is not None else f"unreadable pairwise answer: {error}",
            status="ok" if winner is not None else "failed",
            raw=generation.text,
            error=error,
            generation=generation,
        )

    async def compare(
        self, *, code: str, summary_a: str, summary_b: str, instruction: str, **extra: Any
    ) -> PairwiseJudgement:
        """Both orders (concurrently), combined by :func:`combine_orders`."""
        ab, ba = await asyncio.gather(
            self.judge_order(
                code=code,
                first=summary_a,
                second=summary_b,
                shown_first="a",
                instruction=instruction,
                **extra,
            ),
            self.judge_order(
                code=code,
                first=summary_b,
                second=summary_a,
                shown_first="b",
                instruction=instruction,
                **extra,
            ),
        )
        return combine_orders(ab, ba)
