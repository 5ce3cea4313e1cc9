"""The offline judge: a deterministic rubric heuristic, not a language model.

It scores the same three criteria the LLM judge's rubric names, from surface facts only:

- conciseness: the summary's word count against a target band;
- technical accuracy: how many of the code's most salient entities (``code_facts.entities``)
  the summary mentions, halved for every code-like name in the summary that does not occur
  in the code (a hallucinated identifier);
- instruction alignment: the share of the instruction's content words the summary uses.

It needs no network and gives the same score for the same input, so the whole pipeline
runs on a fresh machine. It cannot tell a true sentence from a false one that uses the
right names: treat it as a baseline to compare LLM judges against, never as ground truth.
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass
from typing import Any

from codi_eval import code_facts
from codi_eval.judging.judgement import Judgement

DEFAULT_WEIGHTS: dict[str, float] = {
    "technical_accuracy": 0.5,
    "conciseness": 0.25,
    "instruction_alignment": 0.25,
}

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_CODE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Names a summary writes as code: `backticked`, call(...), snake_case, camelCase, a.b.
_BACKTICKED = re.compile(r"`([^`\n]{1,80})`")
_CALL = re.compile(r"\b([A-Za-z_][\w.]*)\(")
_SNAKE = re.compile(r"\b_*[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+_*\b|\b__\w+__\b")
_CAMEL = re.compile(r"\b[a-z]+[A-Z][A-Za-z0-9]*\b")
# Parts of two or more characters, so prose abbreviations ("e.g.", "i.e.") are not names.
_DOTTED = re.compile(r"\b[A-Za-z_]\w+(?:\.[A-Za-z_]\w+)+\b")
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")

# Names every Python summary may use without them appearing in the code.
_ALWAYS_KNOWN = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | {"self", "cls"}


def _always_known(language: str) -> frozenset[str]:
    """Names a summary of ``language`` code may use without them being in the code: the
    language's keywords and core names (Python's builtins, Dart's int and print, ...).
    Unknown languages keep Python's list, as before languages had their own."""
    canonical = code_facts.canonical_language(language)
    if canonical is None or canonical == "python":
        return _ALWAYS_KNOWN
    return code_facts.known_names(canonical)


# Words that say how to answer rather than what to cover.
_STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as into about
    is are was were be been being do does did done this that these those it its it's
    what which who whom whose how why when where there here their they them you your
    we our i me my he she his her can could should would will shall may might must
    not no yes all any each every some such than too very just also only so
    explain describe summarize summarise summary write give tell show list brief briefly
    please code function method class snippet following given provided below above
    include includes including especially mention focus detail details concise short""".split()
)


@dataclass(frozen=True)
class _Part:
    score: float | None  # None: the part does not apply to this input
    reason: str


class OfflineJudge:
    """Heuristic rubric judge with the :class:`~codi_eval.judging.judgement.Judge` interface.

    ``target_words`` is the band of summary lengths that count as fully concise;
    ``top_entities`` is how many of the code's most salient entities a summary should name.
    """

    provider = "offline"

    def __init__(
        self,
        *,
        metric_name: str = "summary_quality",
        prompt_ref: str | None = None,
        target_words: tuple[int, int] = (12, 80),
        top_entities: int = 6,
        weights: dict[str, float] | None = None,
    ) -> None:
        low, high = target_words
        if not 0 < low <= high:
            raise ValueError(f"target_words must be 0 < low <= high, got {target_words}")
        if top_entities < 1:
            raise ValueError(f"top_entities must be >= 1, got {top_entities}")
        self.metric_name = metric_name
        # Recorded so a trace says which rubric the run asked for; the heuristic reads no prompt.
        self.prompt_ref = prompt_ref
        self.target_words = (low, high)
        self.top_entities = top_entities
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        always_apply = self.weights.get("technical_accuracy", 0) + self.weights.get(
            "conciseness", 0
        )
        if (
            set(self.weights) != set(DEFAULT_WEIGHTS)
            or any(w < 0 for w in self.weights.values())
            or always_apply <= 0
        ):
            raise ValueError(
                f"weights must give a non-negative weight to each of {sorted(DEFAULT_WEIGHTS)}, "
                "and a positive one to technical_accuracy or conciseness (they always apply)"
            )

    async def judge(self, *, code: str, summary: str, instruction: str, **extra: Any) -> Judgement:
        """Score ``summary`` of ``code`` in [0, 1]; ``extra["language"]`` defaults to python."""
        return self.score(
            code=code,
            summary=summary,
            instruction=instruction,
            language=str(extra.get("language") or "python"),
        )

    def score(
        self, *, code: str, summary: str, instruction: str, language: str = "python"
    ) -> Judgement:
        """The synchronous core of :meth:`judge`, for callers outside an event loop."""
        summary = summary or ""
        entity_list = code_facts.entities(code, language)
        mentioned = code_facts.mentioned(summary, entity_list) if summary.strip() else []
        hallucinated = hallucinated_names(summary, code, language)
        parts = {
            "technical_accuracy": self._accuracy(entity_list, mentioned, hallucinated),
            "conciseness": self._conciseness(code_facts.word_count(summary)),
            "instruction_alignment": _alignment(summary, instruction or ""),
        }
        applicable = {
            k: p.score for k, p in parts.items() if p.score is not None and self.weights[k] > 0
        }
        # Parts that do not apply drop out and the rest are re-weighted, rather than being
        # given free points; accuracy and conciseness always apply (see __init__).
        total_weight = sum(self.weights[k] for k in applicable)
        score = sum(self.weights[k] * v for k, v in applicable.items()) / total_weight
        score = min(1.0, max(0.0, score))  # guards float rounding only; parts are in [0, 1]
        reason = f"offline heuristic {score:.2f}. " + " ".join(
            f"{name.replace('_', ' ')}: {part.reason}." for name, part in parts.items()
        )
        return Judgement(
            metric_name=self.metric_name,
            score=score,
            reason=reason,
            status="ok",
            raw=None,
            scale="0-1",
            meta={
                "judge": "offline_heuristic",
                "prompt_ref": self.prompt_ref,
                "parts": {k: p.score for k, p in parts.items()},
                "weights": {k: self.weights[k] for k in applicable},
                "entities": entity_list[: self.top_entities],
                "mentioned": mentioned,
                "hallucinated": hallucinated,
                "language": language,
            },
            generation=None,
        )

    def _conciseness(self, words: int) -> _Part:
        low, high = self.target_words
        if words == 0:
            return _Part(0.0, "0.00 (empty summary)")
        if words < low:
            # Too short to say what the code does; proportional credit.
            return _Part(
                words / low, f"{words / low:.2f} ({words} words, below the {low}-{high} band)"
            )
        if words > high:
            # Past the band every extra word dilutes; hyperbolic so it never hits 0 abruptly.
            return _Part(
                high / words, f"{high / words:.2f} ({words} words, above the {low}-{high} band)"
            )
        return _Part(1.0, f"1.00 ({words} words, within the {low}-{high} band)")

    def _accuracy(
        self, entity_list: list[str], mentioned: list[str], hallucinated: list[str]
    ) -> _Part:
        penalty = 0.5 ** len(hallucinated)
        invented = (
            f"; {len(hallucinated)} name(s) not in the code: {', '.join(hallucinated[:5])}"
            if hallucinated
            else "; no names absent from the code"
        )
        if not entity_list:
            # Nothing to cover (e.g. code that does not parse): judge on invented names alone.
            return _Part(penalty, f"{penalty:.2f} (the code has no entities to cover{invented})")
        wanted = min(len(entity_list), self.top_entities)
        covered = min(len(set(mentioned)), wanted)
        coverage = covered / wanted
        value = coverage * penalty
        named = f": {', '.join(mentioned[:5])}" if mentioned else ""
        return _Part(
            value,
            f"{value:.2f} (names {len(set(mentioned))} code entities, {wanted} wanted for full "
            f"credit{named}{invented})",
        )


def hallucinated_names(summary: str, code: str, language: str = "python") -> list[str]:
    """Code-like names in ``summary`` (backticked, called, snake_case, camelCase, dotted)
    with a part that occurs nowhere in ``code``; the language's keywords and core names
    (Python builtins, Dart's ``int`` and ``print``, JavaScript's ``console``) never count."""
    vocabulary = set(_CODE_WORD.findall(code)) | _always_known(language)
    candidates: dict[str, None] = {}
    for match in _BACKTICKED.finditer(summary):
        text = match.group(1).strip().removesuffix("()")
        if _IDENTIFIER_PATH.match(text):
            candidates.setdefault(text, None)
    for pattern in (_CALL, _SNAKE, _CAMEL, _DOTTED):
        for match in pattern.finditer(summary):
            candidates.setdefault(match.group(1) if pattern is _CALL else match.group(0), None)
    invented: list[str] = []
    for name in candidates:
        parts = [p for p in name.strip(".").split(".") if p]
        if any(p not in vocabulary for p in parts) and name not in invented:
            invented.append(name)
    return invented


def instruction_keywords(instruction: str) -> list[str]:
    """The instruction's content words (lower-case, no stop words or directive verbs)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(instruction.lower()):
        if len(word) >= 3 and word not in _STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)


def _stem(word: str) -> str:
    # Light suffix stripping so "handles"/"handling"/"handled" meet; no dictionary needed.
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _alignment(summary: str, instruction: str) -> _Part:
    keywords = instruction_keywords(instruction)
    if not keywords:
        return _Part(
            None, "not scored (the instruction has no content words beyond 'explain the code')"
        )
    summary_stems = {_stem(w) for w in _WORD.findall(summary.lower())}
    hits = [k for k in keywords if _stem(k) in summary_stems]
    value = len(hits) / len(keywords)
    missing = [k for k in keywords if k not in hits]
    detail = f"; missing: {', '.join(missing[:5])}" if missing else ""
    return _Part(
        value, f"{value:.2f} (uses {len(hits)} of {len(keywords)} instruction keywords{detail})"
    )
