"""What every dataset builder shares: near-duplicate removal, seeded sampling, the drop
counts a build reports, and turning a doc comment's Markdown into a plain reference."""

from __future__ import annotations

import html
import random
import re
from collections import Counter
from dataclasses import dataclass, field

from codi_eval.datasets import DatasetItem

__all__ = [
    "BuildReport",
    "Candidate",
    "first_sentence",
    "is_test_name",
    "plain_text",
    "sample",
    "without_near_duplicates",
]

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Candidate:
    """An item that passed the per-declaration rules, with what near-duplicate removal compares."""

    item: DatasetItem
    signature: str
    tokens: frozenset[str]


@dataclass
class BuildReport:
    """How many declarations each rule dropped, in the order the rules apply.

    ``stages`` counts what was seen (files, declarations); ``dropped`` counts per rule;
    ``kept`` is the number of items written.
    """

    stages: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    kept: int = 0

    def drop(self, rule: str) -> None:
        self.dropped[rule] += 1

    def ordered_drops(self) -> list[tuple[str, int]]:
        """(rule, count) in the order the rules apply; rules that dropped nothing are left out."""

        def rank(rule: str) -> int:
            for index, prefix in enumerate(RULE_ORDER):
                if rule.startswith(prefix):
                    return index
            return len(RULE_ORDER)

        return sorted(((r, n) for r, n in self.dropped.items() if n), key=lambda rn: rank(rn[0]))

    def to_json(self) -> dict[str, object]:
        return {
            "stages": dict(self.stages),
            "dropped": dict(self.ordered_drops()),
            "kept": self.kept,
        }


#: The per-declaration rules in the order they apply (a drop is counted under the first).
RULE_ORDER = (
    "not a function",
    "constructor",
    "test",
    "undocumented",
    "override without doc",
    "doc under",
    "under",
    "over",
    "declared twice",
    "near-duplicate",
    "not in the --limit",
)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def without_near_duplicates(candidates: list[Candidate], threshold: float) -> list[Candidate]:
    """Keep the first of each group of near-duplicates, in the order given: code token sets
    with Jaccard similarity >= ``threshold``, or the same reference and signature."""
    kept: list[Candidate] = []
    seen_pairs: set[tuple[str, str]] = set()
    for cand in candidates:
        pair = (cand.item.reference or "", cand.signature)
        if pair in seen_pairs:
            continue
        size = len(cand.tokens)
        duplicate = False
        for other in kept:
            other_size = len(other.tokens)
            # Jaccard >= t needs min/max size >= t: skip the set arithmetic when impossible.
            if min(size, other_size) < threshold * max(size, other_size):
                continue
            if jaccard(cand.tokens, other.tokens) >= threshold:
                duplicate = True
                break
        if not duplicate:
            kept.append(cand)
            seen_pairs.add(pair)
    return kept


def sample(items: list[DatasetItem], limit: int | None, seed: int) -> list[DatasetItem]:
    """Items sorted by id; with ``limit``, a ``random.Random(seed)`` shuffle picks them."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    items = sorted(items, key=lambda i: i.id)
    if limit is not None and limit < len(items):
        random.Random(seed).shuffle(items)
        items = sorted(items[:limit], key=lambda i: i.id)
    return items


_CAMEL_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def is_test_name(name: str) -> bool:
    """True for names that are tests or test helpers: a word "test"/"tests" in any part
    (``testParse``, ``ParserTest``, ``test_parse``), as CodeSearchNet drops them; words that
    merely contain the letters ("latest", "contest") are kept."""
    for part in re.split(r"[^A-Za-z0-9]+", name):
        if any(w.lower() in ("test", "tests") for w in _CAMEL_WORDS.findall(part)):
            return True
    return False


# --------------------------------------------------------------------------- references

_FENCE = re.compile(r"^\s*(```|~~~)")
_DIRECTIVE = re.compile(r"\{@(?:end)?[a-zA-Z-]+[^}]*\}")  # {@template x}, {@macro x}, {@tool}
_LINK = re.compile(r"\[([^\]\n]+)\]\((?:[^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](url)
_REF_LINK = re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]")  # [text][ref]
_REFERENCE = re.compile(r"\[([^\]\n]+)\]")  # [name]: a dartdoc / JSDoc reference
_CODE_SPAN = re.compile(r"`+([^`\n]*?)`+")
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "cf", "mr", "mrs", "dr", "no", "approx"})
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z0-9\[(\"'`])")


def first_paragraph(lines: list[str]) -> str:
    """The first paragraph of a doc comment's text lines (a blank line or a fenced code
    block ends it), whitespace-normalised."""
    paragraph: list[str] = []
    for line in lines:
        if _FENCE.match(line):
            if paragraph:
                break
            return ""  # a doc that opens with a code sample has no summary sentence
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    return " ".join(" ".join(paragraph).split())


def plain_text(markdown: str) -> str:
    """Markdown and doc references turned to plain text: ``[name]`` and `code` keep their
    text, links keep their label, emphasis, headings, list markers, HTML tags and dartdoc
    directives (``{@macro ...}``) are dropped, HTML entities decoded."""
    text = _DIRECTIVE.sub(" ", markdown)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _CODE_SPAN.sub(r"\1", text)
    text = _REFERENCE.sub(r"\1", text)
    text = _STRONG.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    text = _HTML_TAG.sub(" ", text)
    text = _HEADING.sub("", text)
    text = _LIST_ITEM.sub("", text)
    return " ".join(html.unescape(text).split())


def first_sentence(text: str) -> str:
    """The first sentence of plain ``text``: up to the first ., ! or ? followed by a space
    and a capital, digit or quote, skipping abbreviations (e.g., i.e., etc.)."""
    for match in _SENTENCE_END.finditer(text):
        before = text[: match.start()].rsplit(None, 1)
        word = before[-1].lower() if before else ""
        if match.group(0) == "." and (word.rstrip(".") in _ABBREVIATIONS or len(word) == 1):
            continue  # "e.g. Foo", "J. Smith"
        return text[: match.end()].strip()
    return text.strip()


def word_tokens(text: str) -> int:
    return len(_WORD.findall(text))
