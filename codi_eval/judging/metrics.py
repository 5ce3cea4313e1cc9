"""Offline metrics: scores computed from the code, the summary and an optional reference,
with no model call.

Every metric is a :class:`Metric` in :data:`METRICS`, called as
``metric(code, summary, reference, language) -> MetricScore``. A metric that does not
apply (ROUGE-L without a reference, coverage of code with no identifiers) returns
``value=None`` and says why in ``reason``; it never returns a made-up 0.

``summary_quality`` and ``code_quality`` are the LLM judges' metric names, not metrics
here: a :class:`~codi_eval.judging.judgement.Judge` produces them.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
import sys
import xml.sax.saxutils
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from codi_eval import code_facts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricScore:
    name: str
    value: float | None  # None: the metric does not apply to this input; reason says why
    reason: str | None = None


ScoreFn = Callable[[str, str, str | None, str], MetricScore]


@dataclass(frozen=True)
class Metric:
    """A named offline scorer and what a reader of its numbers needs to know."""

    name: str
    description: str
    fn: ScoreFn
    needs_reference: bool = False
    bounded: bool = True  # value always in [0, 1]
    higher_is_better: bool | None = True  # None: no better direction (a size, a ratio)

    def __call__(
        self, code: str, summary: str, reference: str | None = None, language: str = "python"
    ) -> MetricScore:
        return self.fn(code, summary, reference, language)


METRICS: dict[str, Metric] = {}

# The judges' metric names; a spec lists them beside offline metrics.
JUDGE_METRICS: dict[str, str] = {
    "summary_quality": "the LLM (or offline) summary judge's score",
    "code_quality": "the code-quality judge's score",
}


def _register(
    name: str,
    description: str,
    *,
    needs_reference: bool = False,
    bounded: bool = True,
    higher_is_better: bool | None = True,
) -> Callable[[ScoreFn], ScoreFn]:
    def add(fn: ScoreFn) -> ScoreFn:
        METRICS[name] = Metric(name, description, fn, needs_reference, bounded, higher_is_better)
        return fn

    return add


def is_judge_metric(name: str) -> bool:
    """True for metric names a judge produces (``summary_quality``, ``code_quality``)."""
    return name in JUDGE_METRICS


def get_metric(name: str) -> Metric:
    """The offline metric called ``name``; ``ValueError`` (with a did-you-mean) otherwise."""
    if name in METRICS:
        return METRICS[name]
    if name in JUDGE_METRICS:
        raise ValueError(
            f"{name!r} is not an offline metric: it is {JUDGE_METRICS[name]}, produced by a "
            "judge (codi_eval.judging.get_judge / the spec's `judge:` entry), not by get_metric"
        )
    close = difflib.get_close_matches(name, [*METRICS, *JUDGE_METRICS], n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown metric {name!r}{hint} (known: {', '.join(sorted(METRICS))})")


def score_all(
    names: Iterable[str],
    code: str,
    summary: str,
    reference: str | None = None,
    language: str = "python",
) -> list[MetricScore]:
    """Score every named offline metric, in order.

    All names are checked before any scoring, so a typo fails fast with ``ValueError``.
    Judge metric names are skipped (a judge scores them). A metric that raises on this
    input gives ``value=None`` with the error as its reason, so one bad item cannot stop a run.
    """
    metrics = [get_metric(n) for n in names if not is_judge_metric(n)]
    scores: list[MetricScore] = []
    for metric in metrics:
        try:
            scores.append(metric(code, summary, reference, language))
        except Exception as exc:  # noqa: BLE001 - reported per item, see docstring
            log.warning("metric %s failed: %s", metric.name, exc, exc_info=True)
            scores.append(MetricScore(metric.name, None, f"error: {type(exc).__name__}: {exc}"))
    return scores


# --- entity metrics (from code_facts) ----------------------------------------------------
# Entities come from the item's language (Dart code is read as Dart: `input` is a parameter
# there, `int` and Flutter's `Widget` are not entities), so the same summary can score
# differently on the same text read as another language.


@_register(
    "entity_density",
    "unique code entities the summary mentions per summary word (Chain of Density's "
    "density; human-written summaries sit near 0.15)",
    bounded=False,
)
def entity_density(code: str, summary: str, reference: str | None, language: str) -> MetricScore:
    words = code_facts.word_count(summary)
    if words == 0:
        return MetricScore("entity_density", None, "empty summary: density undefined")
    entity_list = code_facts.entities(code, language)
    value = code_facts.entity_density(summary, entity_list)
    found = code_facts.mentioned(summary, entity_list)
    return MetricScore("entity_density", value, f"{len(found)} code entities in {words} words")


@_register(
    "identifier_coverage",
    "share of the code's entities (identifiers and API names in the item's language, "
    "code_facts.entities) the summary mentions",
)
def identifier_coverage(
    code: str, summary: str, reference: str | None, language: str
) -> MetricScore:
    entity_list = code_facts.entities(code, language)
    if not entity_list:
        return MetricScore("identifier_coverage", None, "the code has no identifiers to cover")
    found = code_facts.mentioned(summary, entity_list)
    covered = len(set(found) & set(entity_list))
    missing = [e for e in entity_list if e not in set(found)]
    detail = f"; most salient missing: {', '.join(missing[:5])}" if missing else ""
    return MetricScore(
        "identifier_coverage",
        covered / len(entity_list),
        f"mentions {covered} of {len(entity_list)} entities{detail}",
    )


# --- size metrics -------------------------------------------------------------------------

# Lexical code tokens: identifiers, numbers, and each punctuation character. Language
# agnostic on purpose, so the ratio means the same for every dataset.
_CODE_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d+)?|[^\w\s]")


def code_token_count(code: str) -> int:
    """Lexical tokens in ``code`` as :func:`compression` counts them."""
    return len(_CODE_TOKEN.findall(code))


@_register(
    "compression",
    "summary words / code tokens (lower = shorter relative to the code; 0.1 means one "
    "summary word per ten code tokens)",
    bounded=False,
    higher_is_better=None,
)
def compression(code: str, summary: str, reference: str | None, language: str) -> MetricScore:
    tokens = code_token_count(code)
    if tokens == 0:
        return MetricScore("compression", None, "the code has no tokens")
    words = code_facts.word_count(summary)
    return MetricScore(
        "compression", words / tokens, f"{words} summary words / {tokens} code tokens"
    )


@_register("word_count", "words in the summary", bounded=False, higher_is_better=None)
def word_count(code: str, summary: str, reference: str | None, language: str) -> MetricScore:
    return MetricScore("word_count", float(code_facts.word_count(summary)), None)


# --- reference metrics --------------------------------------------------------------------

_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """Google rouge-score's default tokenisation: lower case, runs of [a-z0-9], no stemming
    (so ``get_model`` is two tokens, as a reference docstring would write it)."""
    return _ROUGE_TOKEN.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l_f(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (Lin 2004 with beta = 1, as rouge-score reports ``fmeasure``)."""
    cand, ref = rouge_tokens(candidate), rouge_tokens(reference)
    if not cand or not ref:
        return 0.0
    lcs = lcs_length(cand, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


@_register(
    "rouge_l",
    "ROUGE-L F1 (longest common subsequence) of the summary against the reference",
    needs_reference=True,
)
def rouge_l(code: str, summary: str, reference: str | None, language: str) -> MetricScore:
    if reference is None or not rouge_tokens(reference):
        return MetricScore("rouge_l", None, "no reference summary for this item")
    return MetricScore("rouge_l", rouge_l_f(summary, reference), None)


# BLEU tokenisation and smoothing ported from CodeXGLUE code-to-text evaluator/bleu.py
# (itself from the Moses/NIST mteval script), so our numbers compare with published ones
# (they report this ×100).
_NORMALIZE1 = [(re.compile(r"<skipped>"), ""), (re.compile(r"-\n"), ""), (re.compile(r"\n"), " ")]
_NORMALIZE2 = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # punctuation except apostrophe
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period/comma unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # period/comma unless before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # dash after a digit
]
_SPLIT_PUNCTS = re.compile(r"[\w]+|[^\s\w]")


def bleu_tokens(text: str) -> list[str]:
    """CodeXGLUE's BLEU tokens: ``splitPuncts(text.lower())`` then mteval ``normalize``."""
    s = " ".join(_SPLIT_PUNCTS.findall(text.strip().lower()))
    for pattern, replacement in _NORMALIZE1:
        s = pattern.sub(replacement, s)
    s = xml.sax.saxutils.unescape(s, {"&quot;": '"'})
    s = f" {s} "
    for pattern, replacement in _NORMALIZE2:
        s = pattern.sub(replacement, s)
    return s.split()


def _ngram_counts(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(
        tuple(tokens[i : i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1)
    )


def smoothed_bleu(candidate_tokens: list[str], reference_tokens: list[str], n: int = 4) -> float:
    """Sentence BLEU-n with Lin & Och (2004) add-one smoothing, exactly as CodeXGLUE's
    ``score_cooked(smooth=1)``: +1 on matches and guesses for n-grams of order 2 and up,
    and brevity penalty ``min(0, 1 - (r + 1) / (c + 1))`` in log space."""
    tiny = sys.float_info.min  # CodeXGLUE's guard against log(0)
    ref_counts = _ngram_counts(reference_tokens, n)
    correct = [0] * n
    for gram, count in _ngram_counts(candidate_tokens, n).items():
        correct[len(gram) - 1] += min(ref_counts.get(gram, 0), count)
    log_bleu = 0.0
    for k in range(n):
        guess = max(len(candidate_tokens) - k, 0)
        add = 1 if k > 0 else 0
        log_bleu += math.log(correct[k] + add + tiny) - math.log(guess + add + tiny)
    log_bleu /= n
    brevity = min(0.0, 1 - (len(reference_tokens) + 1) / (len(candidate_tokens) + 1))
    return math.exp(log_bleu + brevity)


@_register(
    "bleu4",
    "smoothed sentence BLEU-4 against the reference (CodeXGLUE code-to-text; ×100 = their table)",
    needs_reference=True,
)
def bleu4(code: str, summary: str, reference: str | None, language: str) -> MetricScore:
    ref = bleu_tokens(reference) if reference is not None else []
    if not ref:
        return MetricScore("bleu4", None, "no reference summary for this item")
    cand = bleu_tokens(summary)
    if not cand:
        # CodeXGLUE's formula gives an empty candidate exp(-len(ref)), not 0; say 0 plainly.
        return MetricScore("bleu4", 0.0, "empty summary")
    return MetricScore("bleu4", smoothed_bleu(cand, ref), None)
