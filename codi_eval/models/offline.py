"""The offline baseline: a deterministic summarizer, NOT a language model.

It lets the whole pipeline (Chain of Density, judging, tracing, reports) run on a
fresh machine with no network and no keys, and it gives every experiment a floor to
compare real models against. It writes summaries from :mod:`codi_eval.code_facts`
(name, parameters, calls, loops, recursion, raised exceptions), so what it says is
true of the code's syntax but says nothing about intent. It does not read docstrings:
datasets take their reference summaries from docstrings, and copying them would
flatter the baseline.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from typing import Any

from codi_eval.code_facts import CodeFacts, analyze, entities, mentioned, word_count
from codi_eval.models.base import GenerateRequest, Generation, Usage
from codi_eval.models.prices import cost_for

__all__ = ["OfflineModel", "DEFAULT_WORD_BUDGET"]

DEFAULT_WORD_BUDGET = 50
# The paper adds 1-3 entities per step; adding at most 3 keeps each step readable.
MAX_NEW_ENTITIES = 3


def _estimate_tokens(text: str) -> int:
    # chars/4: the usual rule of thumb for English and code with BPE tokenizers.
    return math.ceil(len(text) / 4) if text else 0


def _code(entity: str) -> str:
    return f"`{entity}`"


def _join(items: list[str], conj: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conj} {items[-1]}"


_KIND_NOUN = {"function": "function", "method": "method", "class": "class", "module": "module"}

# Neutral sentences used to keep a summary at the previous length while it gets denser,
# as the paper asks ("identical length"). They name nothing specific on purpose.
_FILLER = (
    "The steps follow one another in a clear order.",
    "Callers get the outcome back directly.",
    "The logic stays short and readable.",
    "Nothing here depends on hidden state.",
    "It keeps the work local.",
)


class _Writer:
    """Turns code facts plus a chosen set of entities into English at three levels of detail."""

    def __init__(self, facts: CodeFacts, ents: list[str]) -> None:
        self.facts = facts
        self.ents = ents
        self.noun = _KIND_NOUN.get(facts.kind, "code")

    def _behaviour(self, level: int) -> list[str]:
        f = self.facts
        parts: list[str] = []
        if f.recursive:
            parts.append("recurses on smaller inputs" if level == 0 else "recurses")
        if f.loops:
            loops = [lp.replace("comprehension", "comprehensions") for lp in f.loops]
            if level == 0:
                parts.append(
                    f"iterates using {_join([f'{lp} loops' if lp != 'comprehensions' else lp for lp in loops])}"
                )
            else:
                parts.append("loops")
        if f.yields:
            parts.append("yields values lazily" if level == 0 else "yields values")
        elif f.returns:
            parts.append("returns the computed value" if level == 0 else "returns a value")
        elif f.kind in ("function", "method"):
            parts.append("works through side effects" if level == 0 else "returns nothing")
        return parts

    def compose(self, chosen: set[str], level: int) -> str:
        """A summary that names every entity in ``chosen``; level 0 is the wordiest."""
        f = self.facts
        name = f.name if f.name in chosen else None
        params = [p for p in self.ents if p in chosen and p in f.params]
        calls = [
            e
            for e in self.ents
            if e in chosen and e not in params and e != name and self._is_call(e)
        ]
        raises = [e for e in self.ents if e in chosen and e not in calls and e in f.raises]
        placed = {name, *params, *calls, *raises}
        others = [e for e in self.ents if e in chosen and e not in placed]
        c = _code
        behaviour = self._behaviour(level)
        if level == 2:
            head = c(name) if name else f"This {self.noun}"
            if params:
                head = f"{head} ({', '.join(map(c, params))})"
            bits = []
            if calls:
                bits.append("calls " + ", ".join(map(c, calls)))
            if raises:
                bits.append("raises " + ", ".join(map(c, raises)))
            if others:
                bits.append("uses " + ", ".join(map(c, others)))
            bits += behaviour
            return f"{head}: {'; '.join(bits)}." if bits else f"{head}."
        subject = f"The {self.noun} {c(name)}" if name else f"This {self.noun}"
        clauses = []
        if params:
            clauses.append(f"takes {_join(list(map(c, params)))}")
        if calls:
            clauses.append(
                ("calls " if level else "relies on calls to ") + _join(list(map(c, calls)))
            )
        if raises:
            clauses.append(
                ("raises " if level else "signals failure by raising ")
                + _join(list(map(c, raises)), "or")
            )
        if others:
            clauses.append(
                ("tracks " if level else "keeps track of ") + _join(list(map(c, others)))
            )
        if level == 0:
            first = f"{subject} {clauses[0]}." if clauses else ""
            rest = clauses[1:] + behaviour
            if not first:
                return f"{subject} {_join(rest)}." if rest else f"{subject}."
            return f"{first} It {_join(rest)}." if rest else first
        all_clauses = clauses + behaviour
        return f"{subject} {_join(all_clauses)}." if all_clauses else f"{subject}."

    def _is_call(self, entity: str) -> bool:
        return any(call == entity or call.endswith("." + entity) for call in self.facts.calls)

    def opening(self, budget: int) -> str:
        """Iteration 1: long and non-specific, as Chain of Density starts."""
        f = self.facts
        noun = self.noun
        sentences = [
            f"This {noun} is a piece of {f.language.capitalize()} code that carries out one task for its callers.",
        ]
        if f.params:
            sentences.append("It accepts a few inputs and prepares them for the work that follows.")
        if f.calls:
            sentences.append("Along the way it hands parts of the job to other routines.")
        if f.loops or f.recursive:
            sentences.append("It repeats some of its steps until the job is finished.")
        if f.raises:
            sentences.append("When something is wrong it stops and reports an error.")
        if f.yields:
            sentences.append("It produces its results one at a time.")
        elif f.returns:
            sentences.append("At the end it gives a result back to the caller.")
        sentences.append("The details depend on the inputs it receives.")
        out: list[str] = []
        for s in sentences:
            if word_count(" ".join([*out, s])) <= budget:
                out.append(s)
        return " ".join(out) if out else " ".join(sentences[0].split()[:budget])


def _pad(text: str, target_words: int) -> str:
    """Append neutral sentences while they fit within ``target_words``."""
    for sentence in _FILLER:
        if word_count(text) + word_count(sentence) <= target_words:
            text = f"{text} {sentence}"
    return text


class OfflineModel:
    """A deterministic, network-free baseline that writes summaries from code facts.

    Not a language model: it reads ``request.context`` (filled by the Chain of Density
    service) and answers the same request with the same text every time.
    """

    provider = "offline"

    def __init__(self, name: str = "offline", *, latency_ms: float = 0.0) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        self.name = name
        self.latency_ms = float(latency_ms)

    async def generate(self, request: GenerateRequest) -> Generation:
        started = time.perf_counter()
        if self.latency_ms:
            # Simulated network latency, for runner and concurrency benchmarks.
            await asyncio.sleep(self.latency_ms / 1000)
        text = self.respond(request)
        prompt_tokens = _estimate_tokens((request.system or "") + request.prompt)
        completion_tokens = _estimate_tokens(text)
        usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        return Generation(
            text=text,
            usage=usage,
            model="offline",
            provider=self.provider,
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason="stop",
            cost=cost_for("offline", usage),
        )

    # The text is a pure function of the request, so it is testable without a loop.
    def respond(self, request: GenerateRequest) -> str:
        ctx = request.context or {}
        task = ctx.get("task")
        code = ctx.get("code")
        language = str(ctx.get("language") or "python")
        budget = _budget(ctx.get("word_budget"))
        if task in ("cod_iteration", "cod_final") and isinstance(code, str):
            previous = ctx.get("previous_summary")
            previous = previous if isinstance(previous, str) and previous.strip() else None
            if task == "cod_final":
                return _final(code, language, previous, budget)
            iteration = ctx.get("iteration")
            iteration = iteration if isinstance(iteration, int) and iteration >= 1 else 1
            missing, summary = _iterate(code, language, iteration, previous, budget)
            return json.dumps({"missing_entities": missing, "denser_summary": summary})
        if isinstance(code, str) and code.strip():
            return _plain(code, language, budget)
        return _summarize_prompt(request.prompt, budget)


def _budget(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10:
        return value
    return DEFAULT_WORD_BUDGET


def _fits(text: str, budget: int) -> bool:
    return word_count(text) <= budget


def _iterate(
    code: str, language: str, iteration: int, previous: str | None, budget: int
) -> tuple[list[str], str]:
    facts = analyze(code, language)
    ents = entities(code, language)
    writer = _Writer(facts, ents)
    if iteration == 1 or previous is None:
        return [], writer.opening(budget)
    known = mentioned(previous, ents)
    missing_pool = [e for e in ents if e not in known]
    prev_words = max(word_count(previous), 1)
    prev_density = len(known) / prev_words
    target = min(budget, prev_words) if prev_words <= budget else budget
    # Try the most new entities at the wordiest level that still fits; fall back to
    # fewer new entities and terser prose. Every candidate is checked, not trusted.
    for k in range(min(MAX_NEW_ENTITIES, len(missing_pool)), 0, -1):
        new = missing_pool[:k]
        chosen = set(known) | set(new)
        for level in (0, 1, 2):
            core = writer.compose(chosen, level)
            if not _fits(core, budget):
                continue
            text = _pad(core, target)
            got = mentioned(text, ents)
            if not set(chosen) <= set(got):
                continue
            if len(got) / word_count(text) < prev_density:
                continue
            return list(new), text
    # Nothing new fits: keep the previous summary, which keeps density and entities.
    return [], previous


def _final(code: str, language: str, previous: str | None, budget: int) -> str:
    facts = analyze(code, language)
    ents = entities(code, language)
    writer = _Writer(facts, ents)
    if previous is None:
        # No chain ran: name the most salient entities that fit.
        chosen = set(ents[: MAX_NEW_ENTITIES + 2])
        return writer.compose(chosen, 1)
    keep = set(mentioned(previous, ents))
    for level in (1, 2):
        text = writer.compose(keep, level)
        if keep <= set(mentioned(text, ents)) and word_count(text) <= word_count(previous):
            return text
    return previous.strip()


def _plain(code: str, language: str, budget: int) -> str:
    facts = analyze(code, language)
    ents = entities(code, language)
    writer = _Writer(facts, ents)
    for n in range(min(8, len(ents)), -1, -1):
        for level in (0, 1, 2):
            text = writer.compose(set(ents[:n]), level)
            if _fits(text, budget):
                return text
    return writer.opening(budget)


_FENCE = re.compile(r"```[A-Za-z0-9_+-]*\n(.*?)```", re.S)


def _summarize_prompt(prompt: str, budget: int) -> str:
    match = _FENCE.search(prompt or "")
    if match and match.group(1).strip():
        return _plain(match.group(1), "python", budget)
    words = (prompt or "").split()
    if not words:
        return "The request was empty."
    head = " ".join(words[: max(budget - 4, 1)])
    return f"The request asks: {head}" + ("..." if len(words) > budget - 4 else "")
