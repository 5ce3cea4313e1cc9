"""Python datasets: documented functions from modules' source, the CodeSearchNet way.

Used by ``codi-eval datasets build --module M`` and to build ``datasets/stdlib-functions.jsonl``
(see ``datasets/README.md``). The source is parsed with :mod:`ast`; nothing is executed
beyond importing parent packages to find the files.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import io
import os
import pkgutil
import re
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from codi_eval.builders.common import Candidate, sample, without_near_duplicates
from codi_eval.datasets import DatasetError, DatasetIssue, DatasetItem

__all__ = ["build_from_modules"]

_WORD = re.compile(r"\w+")
_CODE_TOKEN = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|\S")


@dataclass(frozen=True)
class _SourceFile:
    module: str
    path: Path
    relpath: str


def _module_error(module: str, message: str) -> DatasetError:
    return DatasetError([DatasetIssue(f"module {module!r}", message)])


def _python_file(spec: importlib.machinery.ModuleSpec) -> Path | None:
    origin = spec.origin
    if origin == "frozen":  # e.g. posixpath, os, codecs in 3.11: the loader knows the file
        origin = getattr(spec.loader_state, "filename", None)
    if origin and origin.endswith(".py") and os.path.isfile(origin):
        return Path(origin)
    return None


def _relative_to_root(module: str, file: Path) -> str:
    """The file's path below the directory its top-level package lives in (posix style)."""
    depth = module.count(".") + (2 if file.name == "__init__.py" else 1)
    return "/".join(file.parts[-depth:])


def _source_files(modules: Iterable[str]) -> list[_SourceFile]:
    """The Python files for ``modules`` and, for packages, all their non-test submodules."""
    files: dict[str, _SourceFile] = {}

    def add_package(package: str, search: Iterable[str]) -> None:
        paths = list(search)
        for info in sorted(pkgutil.iter_modules(paths), key=lambda m: m.name):
            if "test" in info.name.lower():  # test suites are not documentation
                continue
            name = f"{package}.{info.name}"
            # Searching the package's own directories finds the file without importing it.
            sub = importlib.machinery.PathFinder.find_spec(name, paths)
            if sub is None:
                continue
            file = _python_file(sub)
            if file is not None:
                files.setdefault(name, _SourceFile(name, file, _relative_to_root(name, file)))
            if sub.submodule_search_locations:
                add_package(name, sub.submodule_search_locations)

    for module in modules:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError) as exc:
            raise _module_error(module, f"cannot be found ({exc})") from exc
        if spec is None and "." not in module:
            spec = importlib.machinery.PathFinder.find_spec(module)
        if spec is None:
            raise _module_error(module, "cannot be found")
        file = _python_file(spec)
        if file is None:
            raise _module_error(module, "has no Python source (built-in or extension module)")
        files.setdefault(module, _SourceFile(module, file, _relative_to_root(module, file)))
        if spec.submodule_search_locations:
            add_package(module, spec.submodule_search_locations)
    return sorted(files.values(), key=lambda f: f.module)


def _summary(docstring: str, name: str) -> str:
    """The docstring's first paragraph, whitespace-normalised, after any signature lines.

    Old-style docstrings open with the call signature (``wrap(text : string) -> [string]``);
    leading lines that start with ``name(`` (or the name without leading underscores) say
    nothing a reader cannot see in the code, so they are skipped.
    """
    lines = docstring.strip().split("\n")
    signature = re.compile(rf"(?:{re.escape(name)}|{re.escape(name.lstrip('_'))})\(")
    while lines and signature.match(lines[0].strip()):
        line = lines.pop(0)
        depth = line.count("(") - line.count(")")
        # A signature continued on the next lines: open parentheses or a trailing arrow.
        while lines and (depth > 0 or line.rstrip().endswith(">")):
            line = lines.pop(0)
            depth += line.count("(") - line.count(")")
    paragraph = re.split(r"\n\s*\n", "\n".join(lines).strip(), maxsplit=1)[0]
    return " ".join(paragraph.split())


def _code_tokens(code: str) -> frozenset[str]:
    """Code tokens without comments, layout or docstrings, for near-duplicate detection."""
    tokens: set[str] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type not in skip and tok.string:
                tokens.add(tok.string)
    except (tokenize.TokenError, SyntaxError):
        return frozenset(_CODE_TOKEN.findall(code))
    return frozenset(tokens)


def _functions(
    body: list[ast.stmt], prefix: str
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(qualname, node) for functions defined directly in a module or (nested) class body."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"{prefix}{node.name}", node
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node.body, f"{prefix}{node.name}.")


def _starts_own_line(line: str, col: int) -> bool:
    return not line.encode("utf-8")[:col].strip()


def _extract(
    file: _SourceFile,
    lines: list[str],
    qualname: str,
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    *,
    min_lines: int,
    max_lines: int | None,
    min_doc_tokens: int,
) -> Candidate | None:
    """The dataset item for one function, or None when a CodeSearchNet rule drops it."""
    name = node.name
    if name.startswith("__") and name.endswith("__"):  # constructors and dunders
        return None
    if "test" in qualname.lower():
        return None
    docstring = ast.get_docstring(node, clean=True)
    if not docstring or len(node.body) < 2:  # undocumented, or nothing but a docstring
        return None
    reference = _summary(docstring, name)
    if not reference or len(_WORD.findall(reference)) < min_doc_tokens:
        return None
    doc = node.body[0]
    assert doc.end_lineno is not None and node.end_lineno is not None
    # The docstring must sit on lines of its own so that removing them leaves valid code.
    if not _starts_own_line(lines[doc.lineno - 1], doc.col_offset):
        return None
    if node.body[1].lineno <= doc.end_lineno:
        return None
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    after_doc = doc.end_lineno + 1
    while after_doc < node.body[1].lineno and not lines[after_doc - 1].strip():
        after_doc += 1  # the blank lines that separated the docstring from the body
    kept = list(range(start, doc.lineno)) + list(range(after_doc, node.end_lineno + 1))
    counted = sum(1 for n in kept if n >= node.lineno and lines[n - 1].strip())
    if counted < min_lines or (max_lines is not None and counted > max_lines):
        return None
    first = lines[start - 1]
    indent = first[: len(first) - len(first.lstrip())]
    code = "\n".join(
        lines[n - 1][len(indent) :] if lines[n - 1].startswith(indent) else lines[n - 1]
        for n in kept
    ).rstrip()
    item = DatasetItem(
        id=f"{file.module}:{qualname}",
        language="python",
        code=code,
        reference=reference,
        source={
            "module": file.module,
            "qualname": qualname,
            "path": file.relpath,
            "lineno": node.lineno,
        },
    )
    signature = f"{name}({ast.unparse(node.args)})"
    return Candidate(item, signature, _code_tokens(code))


def _candidates(
    file: _SourceFile, *, min_lines: int, max_lines: int | None, min_doc_tokens: int
) -> list[Candidate]:
    try:
        with tokenize.open(file.path) as handle:
            text = handle.read()
        tree = ast.parse(text, filename=str(file.path))
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise _module_error(file.module, f"cannot parse {file.path}: {exc}") from exc
    lines = text.split("\n")
    found: list[Candidate] = []
    seen: set[str] = set()
    for qualname, node in _functions(tree.body, ""):
        if qualname in seen:  # a redefinition (property setter, platform variant): keep the first
            continue
        seen.add(qualname)
        candidate = _extract(
            file,
            lines,
            qualname,
            node,
            min_lines=min_lines,
            max_lines=max_lines,
            min_doc_tokens=min_doc_tokens,
        )
        if candidate is not None:
            found.append(candidate)
    return found


def build_from_modules(
    modules: list[str],
    *,
    limit: int | None = None,
    seed: int = 0,
    min_lines: int = 3,
    max_lines: int | None = 60,
    min_doc_tokens: int = 3,
    dedup_threshold: float = 0.9,
) -> list[DatasetItem]:
    """Documented functions and methods from Python modules as (code, reference) items.

    Each named module is located with :func:`importlib.util.find_spec` (a package brings
    all its submodules except those whose name contains "test") and its source is parsed
    with :mod:`ast`; nothing is executed beyond importing parent packages. Following
    CodeSearchNet, an item is a module-level function or a (nested) class's method that:

    * has a docstring; ``reference`` is its first paragraph, whitespace-normalised (leading
      lines that only repeat the call signature, ``name(...) -> ...``, are skipped first),
      and the docstring is removed from ``code`` (decorators kept, dedented to column 0);
    * has at least ``min_lines`` and at most ``max_lines`` non-blank lines, counted from the
      ``def`` line after the docstring is removed;
    * has at least ``min_doc_tokens`` word tokens in ``reference``;
    * is not a dunder or constructor (``__init__``, ``__repr__``...) and has no "test"
      (any case) in its qualified name; private helpers are kept.

    Near-duplicates are removed, keeping the item with the smallest id: code token sets
    with Jaccard similarity >= ``dedup_threshold``, or the same reference and signature.
    Items are returned sorted by id. With ``limit``, a ``random.Random(seed)`` shuffle of
    that sorted list picks the items, which are then sorted by id again. The same modules
    (in any order), Python version and arguments give identical output.

    Raises :class:`DatasetError` naming the module when it cannot be found, has no Python
    source, or cannot be parsed.
    """
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    files = _source_files(dict.fromkeys(modules))
    candidates = [
        cand
        for file in files
        for cand in _candidates(
            file, min_lines=min_lines, max_lines=max_lines, min_doc_tokens=min_doc_tokens
        )
    ]
    candidates.sort(key=lambda c: c.item.id)
    items = [c.item for c in without_near_duplicates(candidates, dedup_threshold)]
    return sample(items, limit, seed)
