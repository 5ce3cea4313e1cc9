"""Dart datasets: documented declarations with their ``///`` doc comments.

Dart documents code with ``///`` lines (or ``/** */`` blocks) of Markdown with ``[name]``
references; the first sentence of the first paragraph is the declaration's summary, as
Effective Dart asks ("start doc comments with a single-sentence summary").
"""

from __future__ import annotations

import os
import re

from codi_eval.builders.common import BuildReport
from codi_eval.builders.source import SourceLanguage, build_from_source
from codi_eval.code_facts import dart
from codi_eval.datasets import DatasetItem

__all__ = ["DART", "build_dart", "doc_lines"]

_GENERATED_SUFFIXES = (
    ".g.dart",
    ".freezed.dart",
    ".mocks.dart",
    ".gr.dart",
    ".config.dart",
    ".pb.dart",
    ".pbenum.dart",
    ".pbjson.dart",
    ".pbserver.dart",
)
_GENERATED_MARK = re.compile(
    rb"GENERATED CODE|Generated code|@generated|DO NOT (?:EDIT|MODIFY)", re.I
)
_TEST_DIRS = frozenset({"test", "tests", "integration_test", "test_driver"})


def doc_lines(doc: str) -> list[str]:
    """The text lines of a Dart doc comment (``///`` lines or a ``/** */`` block), markers
    removed; banner lines of slashes only are blank."""
    lines: list[str] = []
    in_block = False
    for raw in doc.split("\n"):
        line = raw.strip()
        if in_block or line.startswith("/**"):
            closing = line.endswith("*/")
            body = line.removeprefix("/**") if not in_block else line
            body = body.removesuffix("*/") if closing else body
            body = body.strip()
            body = body[1:] if body.startswith("*") and not body.startswith("**") else body
            lines.append(body.strip())
            in_block = not closing
            continue
        if line.startswith("///"):
            body = line[3:]
            if not body.strip("/ \t"):
                lines.append("")  # a ////////// banner, not documentation
                continue
            lines.append(body[1:] if body.startswith(" ") else body)
    return lines


def _is_generated(relpath: str, head: bytes) -> bool:
    return relpath.endswith(_GENERATED_SUFFIXES) or bool(_GENERATED_MARK.search(head[:600]))


def _is_test_file(relpath: str) -> bool:
    parts = relpath.split("/")
    return parts[-1].endswith("_test.dart") or any(p in _TEST_DIRS for p in parts[:-1])


def _license(head: bytes) -> str | None:
    if b"Apache License" in head:
        return "Apache-2.0"
    if b"BSD-style license" in head:
        return "BSD-3-Clause"
    return None


DART = SourceLanguage(
    name="dart",
    extensions=(".dart",),
    outline=dart.outline,
    doc_lines=doc_lines,
    is_generated=_is_generated,
    is_test_file=_is_test_file,
    kinds=frozenset(
        {
            "function",
            "method",
            "getter",
            "setter",
            "operator",
            "class",
            "mixin",
            "extension",
            "extension type",
            "enum",
        }
    ),
    license_of=_license,
)


def build_dart(
    root: str | os.PathLike[str],
    *,
    limit: int | None = None,
    seed: int = 0,
    min_lines: int = 3,
    max_lines: int | None = 60,
    min_doc_tokens: int = 3,
    dedup_threshold: float = 0.9,
    report: BuildReport | None = None,
) -> list[DatasetItem]:
    """Documented Dart declarations under ``root``; see :mod:`codi_eval.builders.source`."""
    return build_from_source(
        root,
        DART,
        limit=limit,
        seed=seed,
        min_lines=min_lines,
        max_lines=max_lines,
        min_doc_tokens=min_doc_tokens,
        dedup_threshold=dedup_threshold,
        report=report,
    )
