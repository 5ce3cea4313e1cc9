"""The offline judge reads the language's identifiers through code_facts."""

from __future__ import annotations

from codi_eval.judging.offline_judge import OfflineJudge, hallucinated_names

DART = (
    "String shorten(String input, int max) {\n  print(input);\n  return input.substring(0, max);\n}"
)


def test_dart_core_names_are_known_and_python_builtins_are_not() -> None:
    summary = "`shorten` prints `input` with `print` and cuts it to `max` using `len` and `String`."
    assert hallucinated_names(summary, DART, "dart") == ["len"]
    # Python code keeps Python's builtins as always-known names.
    python = "def shorten(text, n):\n    return text[:n]\n"
    assert hallucinated_names("Uses `len` and `print`.", python) == []
    assert hallucinated_names("Uses `len` and `print`.", python, "python") == []


def test_accuracy_on_dart_counts_dart_entities() -> None:
    judge = OfflineJudge()
    good = judge.score(
        code=DART,
        summary="`shorten` cuts `input` to `max` characters with `input.substring` after printing it.",
        instruction="Explain it.",
        language="dart",
    )
    vague = judge.score(
        code=DART,
        summary="This code shortens a piece of text to a length and prints it first.",
        instruction="Explain it.",
        language="dart",
    )
    assert good.meta["entities"][:3] == ["shorten", "input", "max"]
    assert set(good.meta["mentioned"]) >= {"shorten", "input", "max", "input.substring"}
    assert good.meta["parts"]["technical_accuracy"] > vague.meta["parts"]["technical_accuracy"]
    assert good.meta["language"] == "dart" and good.meta["hallucinated"] == []
