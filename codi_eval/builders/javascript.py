"""JavaScript datasets: documented functions, methods and classes with their JSDoc.

A JSDoc comment (``/** ... */`` right before the declaration) is Markdown followed by
block tags (``@param``, ``@returns``); its description's first sentence is the summary,
with inline ``{@link name}`` tags turned to their text.
"""

from __future__ import annotations

import os
import re

from codi_eval.builders.common import BuildReport
from codi_eval.builders.source import SourceLanguage, build_from_source
from codi_eval.code_facts import javascript
from codi_eval.datasets import DatasetItem

__all__ = ["JAVASCRIPT", "build_javascript", "doc_lines"]

_INLINE_TAG = re.compile(
    r"\{@(?:link|linkcode|linkplain|code|tutorial)\s+([^}|\s]+)(?:[|\s]\s*([^}]*))?\}"
)
_GENERATED_MARK = re.compile(rb"@generated|DO NOT (?:EDIT|MODIFY)|auto-generated", re.I)
_TEST_DIRS = frozenset({"test", "tests", "__tests__", "spec", "__mocks__"})


def doc_lines(doc: str) -> list[str]:
    """The description lines of a JSDoc comment: markers removed, up to the first block
    tag (``@param`` ...), inline ``{@link x|text}`` tags replaced by their text."""
    lines: list[str] = []
    body = doc.strip().removeprefix("/**").removesuffix("*/")
    for raw in body.split("\n"):
        line = raw.strip()
        line = line[1:] if line.startswith("*") else line
        line = line[1:] if line.startswith(" ") else line
        if line.lstrip().startswith("@"):
            break
        lines.append(_INLINE_TAG.sub(lambda m: (m.group(2) or m.group(1)).strip(), line))
    return lines


def _is_generated(relpath: str, head: bytes) -> bool:
    name = relpath.rsplit("/", 1)[-1]
    return name.endswith((".min.js", "-min.js", ".bundle.js")) or bool(
        _GENERATED_MARK.search(head[:600])
    )


def _is_test_file(relpath: str) -> bool:
    parts = relpath.split("/")
    name = parts[-1]
    return name.endswith((".test.js", ".spec.js", ".test.mjs", ".spec.mjs")) or any(
        p in _TEST_DIRS for p in parts[:-1]
    )


JAVASCRIPT = SourceLanguage(
    name="javascript",
    extensions=(".js", ".mjs", ".cjs", ".jsx"),
    outline=javascript.outline,
    doc_lines=doc_lines,
    is_generated=_is_generated,
    is_test_file=_is_test_file,
    kinds=frozenset({"function", "method", "getter", "setter", "class"}),
)


def build_javascript(
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
    """Documented JavaScript declarations under ``root``; see :mod:`codi_eval.builders.source`."""
    return build_from_source(
        root,
        JAVASCRIPT,
        limit=limit,
        seed=seed,
        min_lines=min_lines,
        max_lines=max_lines,
        min_doc_tokens=min_doc_tokens,
        dedup_threshold=dedup_threshold,
        report=report,
    )
