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

from codi_eval.code_facts import (
    CodeFacts,
    analyze,
    canonical_language,
    entities,
    language_name,
    mentioned,
    word_count,
)
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


_KIND_NOUN = {
    "function": "function",
    "method": "method",
    "constructor": "constructor",
    "getter": "getter",
    "setter": "setter",
    "operator": "operator",
    "class": "class",
    "mixin": "mixin",
    "extension": "extension",
    "extension type": "extension type",
    "enum": "enum",
    "module": "module",
}
# Kinds that are not a type with members of its own.
_MEMBERLESS_KINDS = frozenset(
    {"function", "method", "constructor", "getter", "setter", "operator", "module", "unknown"}
)
_LOOP_WORDS = {
    "comprehension": "comprehensions",
    "collection for": "collection-for elements",
}

# Neutral sentences used to keep a summary at the previous length while it gets denser,
# as the paper asks ("identical length"). They name nothing specific on purpose.
_FILLER = (
    "The steps follow one another in a clear order.",
    "Callers get the outcome back directly.",
    "The logic stays short and readable.",
    "Nothing here depends on hidden state.",
    "It keeps the work local.",
)
_STATEFUL_FILLER = (
    "The steps follow one another in a clear order.",
    "The logic stays short and readable.",
    "It keeps the work local.",
)
_WIDGET_FILLER = (
    "The layout follows the widget tree in a clear order.",
    "The code stays short and readable.",
    "It keeps the work local to this part of the interface.",
)


class _Writer:
    """Turns code facts plus a chosen set of entities into English at three levels of detail.

    Every claim it makes about behaviour (recursion, loops, awaiting, streams, raising,
    handling errors, state, what a widget builds) comes from a fact; names come only from
    the chosen entities.
    """

    def __init__(self, facts: CodeFacts, ents: list[str]) -> None:
        self.facts = facts
        self.ents = ents
        if facts.widget:
            self.noun = facts.widget
        elif facts.kind == "method" and facts.name == "build" and facts.builds:
            self.noun = "build method"
        else:
            self.noun = _KIND_NOUN.get(facts.kind, "code")
        # Methods and accessors a class (or a widget with its State) declares.
        self.members = (
            {
                d.name
                for d in facts.declarations
                if d.kind in ("method", "getter", "setter", "operator") and "." in d.qualname
            }
            if facts.kind not in _MEMBERLESS_KINDS
            else set()
        )

    def _behaviour(self, level: int) -> list[str]:
        f = self.facts
        parts: list[str] = []
        if f.recursive:
            parts.append("recurses on smaller inputs" if level == 0 else "recurses")
        if f.loops:
            loops = [_LOOP_WORDS.get(lp, f"{lp} loops") for lp in f.loops]
            parts.append(f"iterates using {_join(loops)}" if level == 0 else "loops")
        if f.awaits:
            parts.append("awaits asynchronous results" if level == 0 else "awaits")
        if f.streams and not f.yields:
            parts.append("works with streams" if level == 0 else "uses streams")
        if f.handles_errors and not f.catches:
            parts.append("handles errors it catches" if level == 0 else "handles errors")
        if f.yields:
            if f.streams:
                parts.append("emits a stream of values" if level == 0 else "yields a stream")
            else:
                parts.append("yields values lazily" if level == 0 else "yields values")
        elif f.returns:
            parts.append("returns the computed value" if level == 0 else "returns a value")
        elif f.kind in ("function", "method"):
            parts.append("works through side effects" if level == 0 else "returns nothing")
        return parts

    def _roles(self, chosen: set[str]) -> dict[str, list[str]]:
        f = self.facts
        name = f.name if f.name in chosen else None
        params = [e for e in self.ents if e in chosen and e in f.params]
        state = [e for e in self.ents if e in chosen and e not in params and e in f.state]
        taken = {name, *params, *state}
        builds = [e for e in self.ents if e in chosen and e not in taken and self._is_build(e)]
        taken |= set(builds)
        calls = [e for e in self.ents if e in chosen and e not in taken and self._is_call(e)]
        taken |= set(calls)
        raises = [e for e in self.ents if e in chosen and e not in taken and e in f.raises]
        taken |= set(raises)
        catches = [e for e in self.ents if e in chosen and e not in taken and e in f.catches]
        taken |= set(catches)
        fields = [e for e in self.ents if e in chosen and e not in taken and e in f.fields]
        taken |= set(fields)
        members = [e for e in self.ents if e in chosen and e not in taken and e in self.members]
        taken |= set(members)
        others = [e for e in self.ents if e in chosen and e not in taken]
        return {
            "name": [name] if name else [],
            "params": params,
            "state": state,
            "builds": builds,
            "calls": calls,
            "raises": raises,
            "catches": catches,
            "fields": fields,
            "members": members,
            "others": others,
        }

    def compose(self, chosen: set[str], level: int) -> str:
        """A summary that names every entity in ``chosen``; level 0 is the wordiest."""
        roles = self._roles(chosen)
        name = roles["name"][0] if roles["name"] else None
        c = _code
        behaviour = self._behaviour(level)
        if level == 2:
            head = c(name) if name else f"This {self.noun}"
            if roles["params"]:
                head = f"{head} ({', '.join(map(c, roles['params']))})"
            bits = []
            for role, verb in (
                ("state", "state"),
                ("builds", "builds"),
                ("calls", "calls"),
                ("raises", "raises"),
                ("catches", "catches"),
                ("fields", "fields"),
                ("members", "defines"),
                ("others", "uses"),
            ):
                if roles[role]:
                    bits.append(f"{verb} " + ", ".join(map(c, roles[role])))
            bits += behaviour
            return f"{head}: {'; '.join(bits)}." if bits else f"{head}."
        subject = f"The {self.noun} {c(name)}" if name else f"This {self.noun}"
        clauses = []
        wordy = level == 0
        if roles["params"]:
            clauses.append(f"takes {_join(list(map(c, roles['params'])))}")
        if roles["state"]:
            clauses.append(
                (f"keeps {_join(list(map(c, roles['state'])))} in its state")
                if wordy
                else f"keeps state {_join(list(map(c, roles['state'])))}"
            )
        if roles["builds"]:
            clauses.append(
                ("builds a tree of " if wordy else "builds ") + _join(list(map(c, roles["builds"])))
            )
        if roles["calls"]:
            clauses.append(
                ("relies on calls to " if wordy else "calls ") + _join(list(map(c, roles["calls"])))
            )
        if roles["raises"]:
            clauses.append(
                ("signals failure by raising " if wordy else "raises ")
                + _join(list(map(c, roles["raises"])), "or")
            )
        if roles["catches"]:
            clauses.append(
                ("handles failures by catching " if wordy else "catches ")
                + _join(list(map(c, roles["catches"])), "or")
            )
        if roles["fields"]:
            clauses.append(
                ("is configured with " if wordy else "has fields ")
                + _join(list(map(c, roles["fields"])))
            )
        if roles["members"]:
            clauses.append(
                ("defines the members " if wordy else "defines ")
                + _join(list(map(c, roles["members"])))
            )
        if roles["others"]:
            clauses.append(
                ("keeps track of " if wordy else "tracks ") + _join(list(map(c, roles["others"])))
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

    def _is_build(self, entity: str) -> bool:
        return entity in self.facts.builds

    def opening(self, budget: int) -> str:
        """Iteration 1: long and non-specific, as Chain of Density starts."""
        f = self.facts
        noun = self.noun
        language = language_name(f.language)
        if f.widget and f.widget != "widget state" and f.widget != "change notifier":
            sentences = [
                f"This {noun} is a piece of {language} code that describes part of an app's user interface.",
            ]
        else:
            sentences = [
                f"This {noun} is a piece of {language} code that carries out one task for its callers.",
            ]
        if f.params:
            sentences.append("It accepts a few inputs and prepares them for the work that follows.")
        if f.state:
            sentences.append("It keeps some state that changes while the app runs.")
        if f.builds:
            sentences.append("It puts other widgets together to draw its part of the screen.")
        if f.calls and not f.builds:
            sentences.append("Along the way it hands parts of the job to other routines.")
        if f.loops or f.recursive:
            sentences.append("It repeats some of its steps until the job is finished.")
        if f.awaits or f.streams:
            sentences.append("Some of its work waits for results that arrive later.")
        if f.raises:
            sentences.append("When something is wrong it stops and reports an error.")
        elif f.handles_errors:
            sentences.append("When something goes wrong along the way it deals with the failure.")
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

    @property
    def filler(self) -> tuple[str, ...]:
        if self.facts.builds:
            return _WIDGET_FILLER
        if self.facts.widget or self.facts.state:
            return _STATEFUL_FILLER  # "nothing depends on hidden state" would be false
        return _FILLER


def _pad(text: str, target_words: int, filler: tuple[str, ...] = _FILLER) -> str:
    """Append neutral sentences while they fit within ``target_words``."""
    for sentence in filler:
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
        if task == "pairwise_judge" and isinstance(code, str):
            return _pairwise(
                code, language, str(ctx.get("summary_a") or ""), str(ctx.get("summary_b") or "")
            )
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


# The pairwise heuristic: entity coverage counts most, then a length band; closer than
# PAIRWISE_TIE is a tie. Both summaries are scored alone, so the order never matters.
PAIRWISE_ENTITIES = 6
PAIRWISE_BAND = (12, 80)
PAIRWISE_TIE = 0.02


def _pairwise_score(code: str, language: str, summary: str) -> tuple[float, str]:
    ents = entities(code, language)[:PAIRWISE_ENTITIES]
    words = word_count(summary)
    low, high = PAIRWISE_BAND
    concise = 0.0 if words == 0 else min(1.0, words / low, high / words)
    if not ents:
        return concise, f"{words} words"
    named = len(set(mentioned(summary, ents)))
    score = 0.7 * named / len(ents) + 0.3 * concise
    return score, f"names {named} of {len(ents)} code entities in {words} words"


def _pairwise(code: str, language: str, first: str, second: str) -> str:
    """A pairwise verdict from code facts: a program, and it says so in its reason."""
    a, why_a = _pairwise_score(code, language, first)
    b, why_b = _pairwise_score(code, language, second)
    winner = "tie" if abs(a - b) < PAIRWISE_TIE else ("A" if a > b else "B")
    reason = f"offline heuristic, not a language model: A {why_a} ({a:.2f}), B {why_b} ({b:.2f})"
    return json.dumps({"winner": winner, "reason": reason})


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
            text = _pad(core, target, writer.filler)
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


_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)\n(.*?)```", re.S)


def _summarize_prompt(prompt: str, budget: int) -> str:
    match = _FENCE.search(prompt or "")
    if match and match.group(2).strip():
        # The fence names the language (```dart); an unnamed or unknown one is Python, as before.
        language = canonical_language(match.group(1)) or "python"
        return _plain(match.group(2), language, budget)
    words = (prompt or "").split()
    if not words:
        return "The request was empty."
    head = " ".join(words[: max(budget - 4, 1)])
    return f"The request asks: {head}" + ("..." if len(words) > budget - 4 else "")
