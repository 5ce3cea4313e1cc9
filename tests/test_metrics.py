"""Offline metrics: known answers, bounds, and the registry's errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codi_eval import code_facts
from codi_eval.judging import metrics
from codi_eval.judging.metrics import (
    METRICS,
    MetricScore,
    bleu_tokens,
    get_metric,
    lcs_length,
    rouge_l_f,
    score_all,
    smoothed_bleu,
)

CODE = '''\
def retry_fetch(url, attempts=3):
    """Fetch a URL, retrying on connection errors."""
    for attempt in range(attempts):
        try:
            return urlopen(url).read()
        except ConnectionError:
            time.sleep(2 ** attempt)
    raise RuntimeError("gave up")
'''
REF = "the cat sat on the mat"


def rouge(summary: str, reference: str | None) -> MetricScore:
    return get_metric("rouge_l")("x = 1", summary, reference, "python")


def bleu(summary: str, reference: str | None) -> MetricScore:
    return get_metric("bleu4")("x = 1", summary, reference, "python")


# --- ROUGE-L ------------------------------------------------------------------------------


def test_lcs_length_known_answers() -> None:
    assert lcs_length(list("abcde"), list("ace")) == 3
    assert lcs_length(list("abc"), list("xyz")) == 0
    assert lcs_length([], list("abc")) == 0
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4  # CLRS's example


def test_rouge_l_hand_computed() -> None:
    # LCS "the cat sat on mat" = 5 of 6 tokens on both sides: P = R = F = 5/6.
    assert rouge("the cat sat on a mat", REF).value == pytest.approx(5 / 6)
    # LCS "a c e" = 3; P = 3/4, R = 3/5, F1 = 2PR/(P+R) = 2/3.
    assert rouge_l_f("a c e x", "a b c d e") == pytest.approx(2 / 3)


def test_rouge_l_tokenises_like_rouge_score() -> None:
    # Case and punctuation do not count; snake_case splits into words.
    assert rouge_l_f("Calls get_model().", "calls get model") == 1.0


def test_rouge_l_identical_is_one_and_disjoint_is_zero() -> None:
    assert rouge(REF, REF).value == 1.0
    assert rouge("dogs bark loudly", REF).value == 0.0
    assert rouge("", REF).value == 0.0


def test_rouge_l_without_reference_is_none_with_a_reason() -> None:
    for reference in (None, "", " ... "):
        score = rouge("the cat", reference)
        assert score.value is None
        assert "reference" in (score.reason or "")


# --- BLEU-4 (CodeXGLUE smoothing) ---------------------------------------------------------


def test_bleu4_hand_computed_with_add_one_smoothing() -> None:
    # 1-grams 5/6; 2-grams (3+1)/(5+1); 3-grams (2+1)/(4+1); 4-grams (1+1)/(3+1); BP 0.
    expected = (5 / 6 * 4 / 6 * 3 / 5 * 2 / 4) ** 0.25
    assert bleu("the cat sat on a mat", REF).value == pytest.approx(expected)
    assert expected == pytest.approx(0.638943, abs=1e-6)


def test_bleu4_brevity_penalty_uses_codexglue_plus_one() -> None:
    # "the cat": all n-gram terms are 1 after smoothing; BP = exp(1 - 7/3).
    assert bleu("the cat", REF).value == pytest.approx(math.exp(1 - 7 / 3))


def test_bleu4_identical_is_one_even_for_short_sentences() -> None:
    assert bleu(REF, REF).value == pytest.approx(1.0)
    assert bleu("returns x", "Returns x") == MetricScore("bleu4", pytest.approx(1.0), None)


def test_bleu4_no_overlap_is_zero_and_empty_summary_is_zero() -> None:
    assert bleu("dogs bark", REF).value == pytest.approx(0.0, abs=1e-12)
    empty = bleu("", REF)
    assert (empty.value, empty.reason) == (0.0, "empty summary")


def test_bleu4_without_reference_is_none() -> None:
    assert bleu("the cat", None).value is None


def test_bleu_tokens_split_punctuation_and_lowercase() -> None:
    assert bleu_tokens("Returns os.path.join(a, b).") == [
        "returns",
        "os",
        ".",
        "path",
        ".",
        "join",
        "(",
        "a",
        ",",
        "b",
        ")",
        ".",
    ]


def test_bleu4_longer_candidate_loses_precision_not_brevity() -> None:
    # Longer candidate than reference: no brevity penalty, precision drops.
    assert 0 < smoothed_bleu("the cat sat on the mat today".split(), REF.split()) < 1


# --- entity and size metrics --------------------------------------------------------------


def test_identifier_coverage_counts_the_codes_entities() -> None:
    entity_list = code_facts.entities(CODE, "python")
    assert entity_list, "fixture code must have entities"
    everything = "Mentions " + ", ".join(entity_list) + "."
    full = get_metric("identifier_coverage")(CODE, everything, None, "python")
    assert full.value == 1.0
    none = get_metric("identifier_coverage")(CODE, "It does a thing.", None, "python")
    assert none.value == 0.0
    assert str(len(entity_list)) in (none.reason or "")


def test_identifier_coverage_of_code_without_identifiers_is_none() -> None:
    score = get_metric("identifier_coverage")("", "anything", None, "python")
    assert score.value is None and score.reason


def test_entity_density_is_code_facts_density() -> None:
    summary = (
        "retry_fetch calls urlopen on url, sleeping between attempts, then raises RuntimeError."
    )
    expected = code_facts.entity_density(summary, code_facts.entities(CODE, "python"))
    assert get_metric("entity_density")(CODE, summary, None, "python").value == expected
    assert expected > 0
    assert get_metric("entity_density")(CODE, "", None, "python").value is None


def test_compression_is_summary_words_over_code_tokens() -> None:
    code = "def f(x):\n    return x + 1\n"  # def f ( x ) : return x + 1 → 10 tokens
    summary = "adds one to x"
    value = get_metric("compression")(code, summary, None, "python").value
    assert value == pytest.approx(code_facts.word_count(summary) / 10)
    assert get_metric("compression")("", summary, None, "python").value is None


def test_word_count_metric() -> None:
    assert get_metric("word_count")(CODE, "one two three", None, "python").value == float(
        code_facts.word_count("one two three")
    )


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200), st.one_of(st.none(), st.text(max_size=200)))
def test_bounded_metrics_stay_in_zero_one(code: str, summary: str, reference: str | None) -> None:
    for score in score_all(list(METRICS), code, summary, reference, "python"):
        if score.value is None:
            assert score.reason, f"{score.name} returned None without a reason"
            continue
        assert math.isfinite(score.value) and score.value >= 0, score
        if METRICS[score.name].bounded:
            assert score.value <= 1.0 + 1e-12, score


@given(st.text(alphabet="abc xyz.,", min_size=1, max_size=80))
def test_identical_text_scores_one(text: str) -> None:
    if not bleu_tokens(text):
        return
    assert bleu(text, text).value == pytest.approx(1.0)
    assert rouge(text, text).value in (1.0, None)


# --- registry -----------------------------------------------------------------------------


def test_get_metric_suggests_close_names() -> None:
    with pytest.raises(ValueError, match="did you mean 'rouge_l'"):
        get_metric("rouge")
    with pytest.raises(ValueError, match="unknown metric 'perplexity'"):
        get_metric("perplexity")


def test_summary_quality_is_explained_as_the_judges_metric() -> None:
    with pytest.raises(ValueError, match="not an offline metric.*judge"):
        get_metric("summary_quality")


def test_score_all_keeps_order_and_skips_judge_metrics() -> None:
    names = ["summary_quality", "word_count", "rouge_l", "compression"]
    scores = score_all(names, CODE, "the cat", REF, "python")
    assert [s.name for s in scores] == ["word_count", "rouge_l", "compression"]


def test_score_all_rejects_a_typo_before_scoring() -> None:
    with pytest.raises(ValueError, match="entity_densty"):
        score_all(["word_count", "entity_densty"], CODE, "x", None, "python")


def test_score_all_reports_a_crashing_metric_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(code: str, summary: str, reference: str | None, language: str) -> MetricScore:
        raise RuntimeError("broken parser")

    monkeypatch.setitem(METRICS, "boom", metrics.Metric("boom", "always fails", boom))
    (score,) = score_all(["boom"], CODE, "x", None, "python")
    assert score.value is None and "broken parser" in (score.reason or "")


# --------------------------------------------------------------------------- other languages

# datasets/flutter-samples.jsonl, background_isolate_channels/lib/simple_database:SimpleDatabase.addEntry
ADD_ENTRY = """\
Future<void> addEntry(String value) {
  // No processing happens on the calling isolate, it gets delegated to the
  // background isolate, see [__SimpleDatabaseServer._doAddEntry].
  Completer<void> completer = Completer<void>();
  _completers.addFirst(completer);
  _sendPort.send(_Command(_Codes.add, arg0: value));
  return completer.future;
}"""


def test_entity_metrics_on_dart_count_dart_identifiers() -> None:
    summary = "`addEntry` queues a 'completer' and sends `value` with `_sendPort.send`; callers await its future."
    ents = code_facts.entities(ADD_ENTRY, "dart")
    assert ents == [
        "addEntry",
        "value",
        "Completer",
        "_completers.addFirst",
        "_sendPort.send",
        "_Command",
        "completer",
        "Future",
        "_Codes",
        "add",
        "arg0",
        "future",
    ]  # no `void`, `String` or words of the comment, which Python's reading would count
    assert "void" in code_facts.entities(ADD_ENTRY, "python")
    coverage = get_metric("identifier_coverage")(ADD_ENTRY, summary, None, "dart")
    # addEntry, value, _sendPort.send, and (case-insensitive) Completer/completer, Future/future
    assert code_facts.mentioned(summary, ents) == [
        "addEntry",
        "value",
        "Completer",
        "_sendPort.send",
        "completer",
        "Future",
        "future",
    ]
    assert coverage.value == pytest.approx(7 / 12)
    density = get_metric("entity_density")(ADD_ENTRY, summary, None, "dart")
    assert density.value == pytest.approx(7 / code_facts.word_count(summary))
    assert density.reason == f"7 code entities in {code_facts.word_count(summary)} words"


def test_entity_metrics_on_javascript() -> None:
    code = (
        "function chunk(array, size) {\n  const out = [];\n"
        "  while (array.length) out.push(array.splice(0, size));\n  return out;\n}"
    )
    summary = "Splits 'array' into pieces of `size` with array.splice, collected by out.push."
    coverage = get_metric("identifier_coverage")(code, summary, None, "javascript")
    assert code_facts.entities(code, "js") == [
        "chunk",
        "array",
        "size",
        "out.push",
        "array.splice",
    ]  # `out` is named by out.push already
    assert coverage.value == pytest.approx(4 / 5)  # all but chunk
