"""Datasets from a directory of source files, for the languages parsed with tree-sitter.

One walk for every language; a :class:`SourceLanguage` says what is language-specific
(which files are tests or generated, how a doc comment reads, which declarations are
candidates). The rules, in the order they apply and are counted in the
:class:`~codi_eval.builders.common.BuildReport`:

files
    generated files (``*.g.dart``, ``*.min.js``, ...) and test files (``*_test.dart``,
    ``test/`` folders, ...) are skipped; a file that is not UTF-8 or that the grammar
    cannot parse stops the build with an error naming the file and line.
declarations
    1. only functions, methods, accessors, operators and types (classes, mixins,
       extensions, enums) are candidates; constructors are dropped (as CodeSearchNet does);
    2. names with a word "test" are dropped;
    3. a declaration without a doc comment is dropped (counted apart when it is an
       ``@override``, which inherits its documentation);
    4. the reference is the doc comment's first paragraph, Markdown and ``[name]``
       references turned to plain text, cut to its first sentence; fewer than
       ``min_doc_tokens`` word tokens drops it;
    5. the code, with its own doc comment and its members' doc comments removed, must
       have between ``min_lines`` and ``max_lines`` non-blank lines counted from the
       declaration's first line (annotations before it are kept but not counted);
    6. a name declared twice in a file (a getter and its setter) keeps the first;
then near-duplicates are removed across the whole build, keeping the smallest id.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from codi_eval.builders.common import (
    BuildReport,
    Candidate,
    first_paragraph,
    first_sentence,
    is_test_name,
    plain_text,
    sample,
    without_near_duplicates,
    word_tokens,
)
from codi_eval.code_facts import treesitter as ts
from codi_eval.code_facts.facts import Declaration
from codi_eval.datasets import DatasetError, DatasetIssue, DatasetItem

__all__ = ["SourceLanguage", "build_from_source"]

MAX_ERRORS = 20
_CODE_TOKEN = re.compile(r"[A-Za-z_$][\w$]*|\d[\w.]*|\S")


@dataclass(frozen=True)
class SourceLanguage:
    """The language-specific half of a source build."""

    name: str  # canonical language name, written to each row
    extensions: tuple[str, ...]
    outline: Callable[[bytes], ts.Outline | None]
    doc_lines: Callable[[str], list[str]]  # raw doc comment -> its text lines
    is_generated: Callable[[str, bytes], bool]  # (relative path, head of file)
    is_test_file: Callable[[str], bool]
    kinds: frozenset[str]  # declaration kinds that can become items
    license_of: Callable[[bytes], str | None] = lambda head: None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _files(root: Path, language: SourceLanguage, report: BuildReport) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if not filename.endswith(language.extensions):
                continue
            path = Path(dirpath) / filename
            found.append((path, path.relative_to(root).as_posix()))
    found.sort(key=lambda f: f[1])
    report.stages["files"] = len(found)
    return found


def _without_docs(data: bytes, start: int, end: int, docs: Iterable[tuple[int, int]]) -> bytes:
    """``data[start:end]`` from the start of its first line, with every doc comment inside
    removed; a line that held only a doc comment goes with it."""
    line_start = data.rfind(b"\n", 0, start) + 1
    if data[line_start:start].strip():
        line_start = start  # code before the declaration on its line is not part of it
    out = bytearray()
    position = line_start
    for doc_start, doc_end in sorted(docs):
        if doc_start < start or doc_end > end or doc_start < position:
            continue
        cut_start, cut_end = doc_start, doc_end
        line_begin = data.rfind(b"\n", 0, doc_start) + 1
        line_end = data.find(b"\n", doc_end)
        line_end = len(data) if line_end < 0 else line_end
        if (
            line_begin >= position
            and not data[line_begin:doc_start].strip()
            and not data[doc_end:line_end].strip()
        ):
            cut_start, cut_end = line_begin, min(line_end + 1, end)
        out += data[position:cut_start]
        position = max(position, cut_end)
    out += data[position:end]
    return bytes(out)


def _code_tokens(code: str) -> frozenset[str]:
    return frozenset(_CODE_TOKEN.findall(code))


def _syntax_error(path: str, data: bytes, root: ts.Node, language: str) -> DatasetIssue | None:
    error = ts.first_error(root)
    if error is None:
        return None
    line = error.start_point[0] + 1
    what = (
        "missing " + error.type if error.is_missing else "unexpected " + repr(ts.text(error)[:40])
    )
    return DatasetIssue(
        path,
        f"syntax error (the {language} grammar cannot parse it: {what}, column "
        f"{error.start_point[1] + 1}); fix or remove the file",
        line,
    )


def _reference(doc: str, language: SourceLanguage) -> str:
    return first_sentence(plain_text(first_paragraph(language.doc_lines(doc))))


def _candidate(
    decl: Declaration,
    data: bytes,
    relpath: str,
    docs: list[tuple[int, int]],
    language: SourceLanguage,
    license_name: str | None,
    report: BuildReport,
    *,
    min_lines: int,
    max_lines: int | None,
    min_doc_tokens: int,
) -> Candidate | None:
    """The item for one declaration, or None (counted in ``report``) when a rule drops it."""
    if decl.kind not in language.kinds and decl.kind != "constructor":
        report.drop("not a function, method or type")
        return None
    if decl.kind == "constructor":
        report.drop("constructor")
        return None
    if is_test_name(decl.qualname):
        report.drop("test")
        return None
    reference = _reference(decl.doc, language) if decl.doc else ""
    if not reference:
        report.drop("override without doc" if "override" in decl.annotations else "undocumented")
        return None
    if word_tokens(reference) < min_doc_tokens:
        report.drop(f"doc under {min_doc_tokens} tokens")
        return None
    raw = _without_docs(data, decl.start_byte, decl.end_byte, docs)
    code = textwrap.dedent(raw.decode("utf-8")).strip("\n").rstrip()
    lines = code.split("\n")
    # Annotations and comments before the declaration's own first line are kept, not counted.
    own_line = decl.line - _line_of(data, data.rfind(b"\n", 0, decl.start_byte) + 1)
    counted = sum(1 for line in lines[max(own_line, 0) :] if line.strip())
    if counted < min_lines:
        report.drop(f"under {min_lines} lines")
        return None
    if max_lines is not None and counted > max_lines:
        report.drop(f"over {max_lines} lines")
        return None
    stem = relpath.rsplit(".", 1)[0]
    source: dict[str, object] = {
        "path": relpath,
        "qualname": decl.qualname,
        "kind": decl.kind,
        "lineno": decl.line,
    }
    if license_name:
        source["license"] = license_name
    item = DatasetItem(
        id=f"{stem}:{decl.qualname}",
        language=language.name,
        code=code,
        reference=reference,
        source=source,
    )
    signature = code.split("{", 1)[0].split("=>", 1)[0]
    signature = " ".join(line.strip() for line in signature.split("\n")[max(own_line, 0) :])
    return Candidate(item, f"{decl.name}{signature[signature.find('(') :]}", _code_tokens(code))


def build_from_source(
    root: str | os.PathLike[str],
    language: SourceLanguage,
    *,
    limit: int | None = None,
    seed: int = 0,
    min_lines: int = 3,
    max_lines: int | None = 60,
    min_doc_tokens: int = 3,
    dedup_threshold: float = 0.9,
    report: BuildReport | None = None,
) -> list[DatasetItem]:
    """Documented declarations under ``root`` as (code, reference) items, sorted by id.

    The rules are in this module's docstring; ``report`` (when given) receives what each
    one dropped. With ``limit``, a ``random.Random(seed)`` shuffle picks the items. The
    same directory and arguments give identical output. Raises :class:`DatasetError`
    naming the directory when it is not one, and naming each file and line that is not
    UTF-8 or does not parse (up to 20).
    """
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    report = report if report is not None else BuildReport()
    base = Path(root)
    if not base.is_dir():
        what = "is not a directory" if base.exists() else "no such directory"
        raise DatasetError([DatasetIssue(os.fspath(root), what)])
    errors: list[DatasetIssue] = []
    candidates: list[Candidate] = []
    for path, relpath in _files(base, language, report):
        location = os.fspath(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            errors.append(DatasetIssue(location, f"cannot read: {exc.strerror or exc}"))
            continue
        if language.is_generated(relpath, data[:2048]):
            report.stages["generated files skipped"] += 1
            continue
        if language.is_test_file(relpath):
            report.stages["test files skipped"] += 1
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(
                DatasetIssue(
                    location,
                    f"not valid UTF-8 ({exc.reason} at byte {exc.start})",
                    _line_of(data, exc.start),
                )
            )
            continue
        outline = language.outline(data)
        if outline is None:
            raise DatasetError(
                [DatasetIssue(location, f"no {language.name} grammar is installed (tree-sitter)")]
            )
        problem = _syntax_error(location, data, outline.root, language.name)
        if problem is not None:
            errors.append(problem)
            if len(errors) >= MAX_ERRORS:
                break
            continue
        report.stages["files read"] += 1
        seen: set[str] = set()
        license_name = language.license_of(data[:2048])
        for decl in outline.declarations:
            report.stages["declarations"] += 1
            if decl.doc:
                report.stages["with a doc comment"] += 1
            candidate = _candidate(
                decl,
                data,
                relpath,
                outline.doc_comments,
                language,
                license_name,
                report,
                min_lines=min_lines,
                max_lines=max_lines,
                min_doc_tokens=min_doc_tokens,
            )
            if candidate is None:
                continue
            if decl.qualname in seen:
                report.drop("declared twice in a file")
                continue
            seen.add(decl.qualname)
            candidates.append(candidate)
    if errors:
        raise DatasetError(errors[:MAX_ERRORS], truncated=len(errors) >= MAX_ERRORS)
    candidates.sort(key=lambda c: c.item.id)
    kept = without_near_duplicates(candidates, dedup_threshold)
    report.dropped["near-duplicate"] += len(candidates) - len(kept)
    items = sample([c.item for c in kept], limit, seed)
    if len(items) < len(kept):
        report.dropped[f"not in the --limit {limit} sample"] += len(kept) - len(items)
    report.kept = len(items)
    return items
