"""Dataset builders for Dart and JavaScript source directories, CodeSearchNet-style."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from codi_eval.builders import BuildReport, build_from_source
from codi_eval.builders.common import first_sentence, is_test_name, plain_text
from codi_eval.builders.dart import doc_lines
from codi_eval.datasets import DatasetError, load_jsonl
from tests.cli_helpers import run_cli
from tests.corpora import corpora_dir


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for relpath, content in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


LIBRARY = """
    // Copyright 2024 The Flutter team. Use of this source code is governed by a
    // BSD-style license that can be found in the LICENSE file.
    import 'package:flutter/material.dart';

    /// Formats a [Duration] as `mm:ss`, e.g. 01:05, for the *timer* screen.
    ///
    /// A second paragraph that is not part of the reference.
    String formatDuration(Duration d) {
      final minutes = d.inMinutes.toString().padLeft(2, '0');
      final seconds = (d.inSeconds % 60).toString().padLeft(2, '0');
      return '$minutes:$seconds';
    }

    /// Too short.
    int twice(int x) {
      final y = x * 2;
      return y;
    }

    /// A one-liner that is documented well enough.
    int thrice(int x) => x * 3;

    int undocumented(int x) {
      final y = x + 1;
      return y;
    }

    /// A widget that shows how long the [TimerModel] has been running.
    ///
    /// See [the guide](https://docs.flutter.dev) for more.
    class TimerView extends StatelessWidget {
      /// Creates a timer view showing [elapsed].
      const TimerView({super.key, required this.elapsed});

      /// How long the timer has run.
      final Duration elapsed;

      @override
      Widget build(BuildContext context) {
        return Text(formatDuration(elapsed));
      }

      /// Whether the timer view should show hours as well as minutes.
      bool get showsHours {
        final hours = elapsed.inHours;
        return hours > 0;
      }

      /// Runs the test fixture for this view in a widget tester.
      void testFixture() {
        print('a');
        print('b');
      }
    }
"""


def _build(root: Path, language: str = "dart", **kwargs: object) -> tuple[dict, BuildReport]:
    report = BuildReport()
    items = build_from_source(root, language, report=report, **kwargs)  # type: ignore[arg-type]
    return {item.id: item for item in items}, report


def test_dart_rules_pair_code_without_docs_with_the_first_sentence(tmp_path: Path) -> None:
    root = _tree(tmp_path / "app", {"lib/timer.dart": LIBRARY})
    items, report = _build(root)
    assert sorted(items) == [
        "lib/timer:TimerView",
        "lib/timer:TimerView.showsHours",
        "lib/timer:formatDuration",
    ]
    fmt = items["lib/timer:formatDuration"]
    # Markdown and [name] references as plain text; "e.g." does not end the sentence.
    assert fmt.reference == "Formats a Duration as mm:ss, e.g. 01:05, for the timer screen."
    assert fmt.code.startswith("String formatDuration(Duration d) {") and "///" not in fmt.code
    assert fmt.language == "dart"
    assert fmt.source == {
        "path": "lib/timer.dart",
        "qualname": "formatDuration",
        "kind": "function",
        "lineno": 9,
        "license": "BSD-3-Clause",
    }
    view = items["lib/timer:TimerView"]
    assert view.reference == "A widget that shows how long the TimerModel has been running."
    # Members' doc comments leave the class's code too; annotations and code stay.
    assert "///" not in view.code and "How long the timer" not in view.code
    assert "@override" in view.code and "final Duration elapsed;" in view.code
    assert report.kept == 3


def test_each_dart_rule_is_counted(tmp_path: Path) -> None:
    root = _tree(tmp_path / "app", {"lib/timer.dart": LIBRARY})
    _, report = _build(root)
    drops = dict(report.ordered_drops())
    assert drops == {
        "not a function, method or type": 1,
        "constructor": 1,
        "test": 1,
        "undocumented": 1,
        "override without doc": 1,
        "doc under 3 tokens": 1,  # "Too short."
        "under 3 lines": 1,  # thrice
    }
    assert report.stages["declarations"] == 10 and report.stages["with a doc comment"] == 8
    assert report.kept == 3


def test_generated_and_test_files_are_skipped(tmp_path: Path) -> None:
    body = (
        "/// Adds one to the given value.\nint inc(int x) {\n  final y = x + 1;\n  return y;\n}\n"
    )
    root = _tree(
        tmp_path / "pkg",
        {
            "lib/a.dart": body,
            "lib/a.g.dart": body,
            "lib/a.freezed.dart": body,
            "lib/b.dart": "// GENERATED CODE - DO NOT MODIFY BY HAND\n" + body,
            "lib/a_test.dart": body,
            "test/helpers.dart": body,
        },
    )
    items, report = _build(root)
    assert list(items) == ["lib/a:inc"]
    assert report.stages["generated files skipped"] == 3
    assert report.stages["test files skipped"] == 2


def test_near_duplicates_keep_the_smallest_id(tmp_path: Path) -> None:
    body = (
        "/// Adds one to the given value.\nint inc(int x) {\n  final y = x + 1;\n  return y;\n}\n"
    )
    other = body.replace("Adds one", "Increments by one")
    root = _tree(tmp_path / "pkg", {"lib/b.dart": body, "lib/a.dart": other, "lib/c.dart": body})
    items, report = _build(root)
    assert list(items) == ["lib/a:inc"]
    assert dict(report.ordered_drops())["near-duplicate"] == 2
    # Only the token rule is switched off: b and c still share reference and signature.
    assert sorted(_build(root, dedup_threshold=1.01)[0]) == ["lib/a:inc", "lib/b:inc"]


def test_limit_is_a_seeded_sample_sorted_by_id(tmp_path: Path) -> None:
    files = {
        f"lib/f{i}.dart": f"/// Returns the value {i} times the input.\n"
        f"int f{i}(int x) {{\n  final k{i} = {i};\n  return x * k{i} + {i * 7};\n}}\n"
        for i in range(12)
    }
    root = _tree(tmp_path / "pkg", files)
    full = list(_build(root, dedup_threshold=1.01)[0])
    assert full == sorted(full) and len(full) == 12
    sample = list(_build(root, limit=5, seed=3, dedup_threshold=1.01)[0])
    assert sample == sorted(sample) and set(sample) <= set(full) and len(sample) == 5
    assert sample == list(_build(root, limit=5, seed=3, dedup_threshold=1.01)[0])
    assert {tuple(_build(root, limit=5, seed=s, dedup_threshold=1.01)[0]) for s in range(5)} != {
        tuple(sample)
    }


def test_errors_name_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such directory"):
        build_from_source(tmp_path / "missing", "dart")
    with pytest.raises(DatasetError, match="cannot be built from a directory.*--module"):
        build_from_source(tmp_path, "python")
    root = _tree(
        tmp_path / "bad",
        {
            "lib/ok.dart": "int ok() => 1;\n",
            "lib/latin1.dart": b"// caf\xe9\nint x = 1;\n",
            "lib/broken.dart": "int ok() => 1;\n\nclass {\n  void (\n",
        },
    )
    with pytest.raises(DatasetError) as caught:
        build_from_source(root, "dart")
    messages = [str(issue) for issue in caught.value.errors]
    assert any(re.search(r"broken\.dart:\d+: syntax error", m) for m in messages), messages
    assert any(re.search(r"latin1\.dart:1: not valid UTF-8", m) for m in messages), messages


def test_reference_text_helpers() -> None:
    assert plain_text("See [Foo.bar] and [the docs](https://x.y) or `baz()`.") == (
        "See Foo.bar and the docs or baz()."
    )
    assert plain_text("{@macro flutter.widgets.child} A **bold** and *em* word.") == (
        "A bold and em word."
    )
    assert first_sentence("Returns i.e. the value. Then more.") == "Returns i.e. the value."
    assert first_sentence("Uses version 1.2 today. More") == "Uses version 1.2 today."
    assert first_sentence("No full stop at the end") == "No full stop at the end"
    assert doc_lines("/// One.\n/// Two\n///////\n///   indented") == [
        "One.",
        "Two",
        "",
        "  indented",
    ]
    assert doc_lines("/**\n * Block doc.\n */") == ["", "Block doc.", ""]
    assert is_test_name("testParse") and is_test_name("ParserTest.run") and is_test_name("_test_x")
    assert not is_test_name("latest") and not is_test_name("contestWinner")


JS_FILES = {
    "src/chunk.js": """
        /**
         * Creates an array of elements split into groups the length of `size`.
         * If `array` can't be split evenly, the final chunk is the rest.
         *
         * @param {Array} array The array to process.
         * @returns {Array} Returns the new array of chunks.
         */
        function chunk(array, size) {
          var index = 0, result = [];
          while (index < array.length) {
            result.push(array.slice(index, (index += size)));
          }
          return result;
        }

        /**
         * Like {@link chunk|chunking}, but from the end of {@link Array}.
         */
        export const chunkRight = (array, size) => {
          const copy = array.slice().reverse();
          return chunk(copy, size).reverse();
        };

        /** @private */
        function helper(x) {
          const y = x + 1;
          return y;
        }

        /**
         * A queue of pending chunks.
         */
        class Queue {
          /** Creates an empty queue of pending work. */
          constructor() {
            this.items = [];
          }

          /**
           * Takes the oldest chunk out of the queue.
           */
          take() {
            const first = this.items[0];
            this.items = this.items.slice(1);
            return first;
          }
        }
    """,
    "dist/chunk.min.js": "function chunk(a,b){return a}",
    "test/chunk.test.js": "/** Tests chunking of arrays. */\nfunction t() {\n  a();\n  b();\n}\n",
}


def test_javascript_rules_and_jsdoc(tmp_path: Path) -> None:
    root = _tree(tmp_path / "pkg", JS_FILES)
    items, report = _build(root, "js")
    assert sorted(items) == [
        "src/chunk:Queue",
        "src/chunk:Queue.take",
        "src/chunk:chunk",
        "src/chunk:chunkRight",
    ]
    chunk = items["src/chunk:chunk"]
    assert chunk.reference == "Creates an array of elements split into groups the length of size."
    assert chunk.code.startswith("function chunk(array, size) {") and "/**" not in chunk.code
    assert chunk.language == "javascript"
    assert items["src/chunk:chunkRight"].reference == "Like chunking, but from the end of Array."
    assert items["src/chunk:chunkRight"].code.startswith("export const chunkRight")
    assert "/**" not in items["src/chunk:Queue"].code
    drops = dict(report.ordered_drops())
    assert drops == {"constructor": 1, "undocumented": 1}  # helper's doc has only tags
    assert report.stages["generated files skipped"] == 1
    assert report.stages["test files skipped"] == 1


def test_the_cli_builds_a_dart_dataset_and_reports_the_drops(tmp_path: Path) -> None:
    root = _tree(tmp_path / "app", {"lib/timer.dart": LIBRARY})
    out = tmp_path / "x.jsonl"
    result = run_cli(
        "datasets",
        "build",
        "--source",
        str(root),
        "--language",
        "dart",
        "--out",
        str(out),
        "--json",
        db_url=f"sqlite:///{tmp_path / 'unused.db'}",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["items"] == 3 and data["language"] == "dart"
    assert data["report"]["dropped"]["constructor"] == 1
    assert [i.id for i in load_jsonl(out)] == sorted(i.id for i in load_jsonl(out))
    bad = run_cli(
        "datasets",
        "build",
        "--source",
        str(root),
        "--language",
        "cobol",
        "--out",
        str(out),
        db_url=f"sqlite:///{tmp_path / 'unused.db'}",
    )
    assert bad.returncode == 2 and "--language" in bad.stderr and "cobol" in bad.stderr
    both = run_cli(
        "datasets",
        "build",
        "--module",
        "json",
        "--source",
        str(root),
        "--out",
        str(out),
        db_url=f"sqlite:///{tmp_path / 'unused.db'}",
    )
    assert both.returncode == 2 and "either --module" in both.stderr


def test_flutter_samples_build_real_pairs_whose_code_holds_no_doc_comment() -> None:
    root = corpora_dir() / "flutter-samples"
    items, report = _build(root)
    assert len(items) >= 80
    for item in items.values():
        assert "///" not in item.code, item.id
        source = (root / item.source["path"]).read_text(encoding="utf-8").split("\n")
        # The doc comment sits right above the declaration (and its annotations).
        above: list[str] = []
        line = item.source["lineno"] - 2
        while line >= 0 and (
            source[line].strip().startswith(("///", "@", "//")) or not source[line].strip()
        ):
            if source[line].strip().startswith("///"):
                above.insert(0, source[line].strip()[3:].strip())
            line -= 1
        doc_words = set(re.findall(r"\w+", " ".join(above)))
        assert set(re.findall(r"\w+", item.reference)) <= doc_words, item.id
        assert len(re.findall(r"\w+", item.reference)) >= 3
    simple = items["background_isolate_channels/lib/simple_database:SimpleDatabase.addEntry"]
    assert simple.reference == "Writes value to the database."
    assert report.stages["generated files skipped"] == 1  # a Pigeon-generated api.dart


_NAMES = st.from_regex(r"[a-z][a-zA-Z0-9]{2,8}", fullmatch=True)
_DOC_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"
    ),
    min_size=0,
    max_size=60,
)


@st.composite
def dart_files(draw: st.DrawFn) -> tuple[str, list[list[str]]]:
    """A Dart file of documented functions and classes; returns (source, doc lines per decl)."""
    parts: list[str] = []
    docs: list[list[str]] = []
    for index, name in enumerate(draw(st.lists(_NAMES, min_size=1, max_size=5, unique=True))):
        lines = [f"/// {t}" for t in draw(st.lists(_DOC_TEXT, min_size=0, max_size=3))]
        body = [f"  final v{j} = {j} + x;" for j in range(draw(st.integers(0, 4)))]
        if draw(st.booleans()):
            member_doc = f"  /// {draw(_DOC_TEXT)}"
            parts.append(
                "\n".join(
                    [
                        *lines,
                        f"class C{name} {{",
                        member_doc,
                        f"  int m{index}(int x) {{",
                        *body,
                        "    return x;",
                        "  }",
                        "}",
                    ]
                )
            )
            docs.append(lines + [member_doc.strip()])
        else:
            parts.append("\n".join([*lines, f"int {name}(int x) {{", *body, "  return x;", "}"]))
            docs.append(lines)
    return "\n\n".join(parts) + "\n", docs


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dart_files())
def test_no_row_keeps_its_doc_comment(
    tmp_path: Path, generated: tuple[str, list[list[str]]]
) -> None:
    source, docs = generated
    root = tmp_path / "gen"
    root.mkdir(exist_ok=True)
    (root / "a.dart").write_text(source, encoding="utf-8")
    try:
        items = build_from_source(root, "dart", dedup_threshold=1.01)
    except DatasetError as error:
        # Doc text can be anything, but a `///` comment never breaks the Dart around it.
        raise AssertionError(f"{error}\n{source}") from None
    event(f"rows written: {min(len(items), 3)}{'+' if len(items) >= 3 else ''}")
    all_doc_lines = [line for lines in docs for line in lines if line.strip("/ ")]
    for item in items:
        assert "///" not in item.code
        for line in all_doc_lines:
            assert line not in item.code
        assert len(re.findall(r"\w+", item.reference or "")) >= 3


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.binary(max_size=300) | st.text(max_size=300).map(str.encode), st.sampled_from(["dart", "js"])
)
def test_no_input_file_crashes_the_builder(tmp_path: Path, content: bytes, language: str) -> None:
    root = tmp_path / f"junk-{language}"
    root.mkdir(exist_ok=True)
    target = root / ("x.dart" if language == "dart" else "x.js")
    target.write_bytes(content)
    try:
        items = build_from_source(root, language)
    except DatasetError as error:
        assert all(str(target) == issue.location and issue.line for issue in error.errors), error
    else:
        assert all("///" not in item.code for item in items)
