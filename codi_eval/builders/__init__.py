"""Dataset builders: (code, reference summary) pairs from real source, the CodeSearchNet way.

- :func:`codi_eval.builders.python.build_from_modules`: Python modules (``ast``);
- :func:`build_from_source` with a language: a directory of Dart or JavaScript files
  (tree-sitter), see :mod:`codi_eval.builders.source` for the rules.

Every builder returns :class:`~codi_eval.datasets.DatasetItem` rows sorted by id and raises
:class:`~codi_eval.datasets.DatasetError` naming the file (and line) it cannot use.
"""

from __future__ import annotations

import os

from codi_eval.builders import source
from codi_eval.builders.common import BuildReport
from codi_eval.builders.dart import DART
from codi_eval.builders.javascript import JAVASCRIPT
from codi_eval.code_facts import canonical_language
from codi_eval.datasets import DatasetError, DatasetIssue, DatasetItem

__all__ = ["SOURCE_LANGUAGES", "BuildReport", "build_from_source"]

#: Languages ``build_from_source`` reads from a directory (Python is built from modules).
SOURCE_LANGUAGES: tuple[str, ...] = ("dart", "javascript")


def build_from_source(
    root: str | os.PathLike[str],
    language: str,
    *,
    limit: int | None = None,
    seed: int = 0,
    min_lines: int = 3,
    max_lines: int | None = 60,
    min_doc_tokens: int = 3,
    dedup_threshold: float = 0.9,
    report: BuildReport | None = None,
) -> list[DatasetItem]:
    """Documented declarations of ``language`` (``dart``, ``javascript`` or an alias)
    under ``root``; ``DatasetError`` for another language."""
    canonical = canonical_language(language)
    if canonical not in SOURCE_LANGUAGES:
        known = ", ".join(SOURCE_LANGUAGES)
        hint = " (build Python datasets with --module)" if canonical == "python" else ""
        raise DatasetError(
            [
                DatasetIssue(
                    "--language",
                    f"{language!r} cannot be built from a directory; use one of {known}{hint}",
                )
            ]
        )
    spec = DART if canonical == "dart" else JAVASCRIPT
    return source.build_from_source(
        root,
        spec,
        limit=limit,
        seed=seed,
        min_lines=min_lines,
        max_lines=max_lines,
        min_doc_tokens=min_doc_tokens,
        dedup_threshold=dedup_threshold,
        report=report,
    )
