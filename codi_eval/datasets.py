"""Code datasets: JSONL rows of code to summarise, and how to validate and hash them.

A dataset file holds one JSON object per line::

    {"id": "json.encoder:JSONEncoder.encode", "language": "python", "code": "def encode...",
     "reference": "Return a JSON string representation of a Python data structure.",
     "source": {"module": "json.encoder", "qualname": "JSONEncoder.encode",
                "path": "json/encoder.py", "lineno": 182}}

``id``, ``language``, ``code`` and ``source`` are required, ``instruction`` and
``reference`` optional. Loading refuses a bad file with a :class:`DatasetError` whose
message names the file, the 1-based line and the field, so ``codi-eval`` can exit 2 with
a message a user can act on.

The builders that extract rows from real source, the CodeSearchNet way, live in
:mod:`codi_eval.builders` (see ``datasets/README.md``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from codi_eval.inputs import text_problem

__all__ = [
    "ALLOWED_FIELDS",
    "DatasetError",
    "DatasetIssue",
    "DatasetItem",
    "content_hash",
    "iter_jsonl",
    "load_jsonl",
    "validate_rows",
    "write_jsonl",
]

ALLOWED_FIELDS: tuple[str, ...] = ("id", "language", "code", "instruction", "reference", "source")
REQUIRED_FIELDS: tuple[str, ...] = ("id", "language", "code", "source")
_HASH_PREFIX = b"codi-eval-dataset-v1\n"
DEFAULT_MAX_ERRORS = 20


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class DatasetIssue:
    """One problem in a dataset: where it is (file, 1-based line, field) and what is wrong."""

    location: str
    message: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.location if self.line is None else f"{self.location}:{self.line}"
        what = self.message if self.field is None else f"field '{self.field}': {self.message}"
        return f"{where}: {what}"


class DatasetError(ValueError):
    """A dataset could not be loaded or built; ``errors`` lists every problem found.

    ``str(error)`` is the first problem when there is one, else a count followed by one
    problem per line.
    """

    def __init__(self, errors: list[DatasetIssue], *, truncated: bool = False) -> None:
        if not errors:
            raise ValueError("DatasetError needs at least one issue")
        self.errors = list(errors)
        self.truncated = truncated
        if len(errors) == 1 and not truncated:
            message = str(errors[0])
        else:
            more = f" (stopped after {len(errors)})" if truncated else ""
            lines = "\n".join(f"  {issue}" for issue in errors)
            message = f"{len(errors)} problems in {errors[0].location}{more}:\n{lines}"
        super().__init__(message)


# --------------------------------------------------------------------------- rows

# What a row's field must be, in the words every error about it uses.
_MUST = {
    "id": "must be a non-empty string",
    "language": "must be a non-empty string",
    "code": "must be a non-empty string",
    "instruction": "must be a non-empty string when present",
    "reference": "must be a non-empty string when present",
    "source": "must be a non-empty string or an object",
}


class _Blank(ValueError):
    """A string with nothing in it: reported as the field's own 'must be' message."""


def _row_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    if not value.strip():
        raise _Blank("blank")
    return value


def _json_source(value: Any) -> Any:
    if isinstance(value, dict):
        problem = _json_value_problem(value)
        if problem:
            raise ValueError(problem)
    return value


RowText = Annotated[str, AfterValidator(_row_text)]


def _json_value_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot be written as standard JSON and stored, or None when it can."""
    if depth > 64:
        return "is nested too deeply"
    if isinstance(value, str):
        return text_problem(value)
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "contains a non-finite number"
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if not isinstance(key, str):
                return "object keys must be strings"
            problem = text_problem(key) or _json_value_problem(inner, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for inner in value:
            problem = _json_value_problem(inner, depth + 1)
            if problem:
                return problem
        return None
    return f"contains a value JSON cannot hold ({type(value).__name__})"


class DatasetItem(BaseModel):
    """One piece of code to summarise, with an optional instruction and reference summary.

    The row's one declaration: construction validates every field (a pydantic
    ``ValidationError``, which is a ``ValueError``, naming the field; :meth:`from_json`
    says it in the loader's words), so every item can be written back as a valid row and stored —
    no NUL characters or lone surrogates, no non-finite numbers in ``source``, which is a
    JSON object (treat it as read-only) or a string saying where the code came from.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: RowText
    language: RowText
    code: RowText
    instruction: RowText | None = None
    reference: RowText | None = None
    source: Annotated[dict[str, Any] | RowText, AfterValidator(_json_source)]

    def to_json(self) -> dict[str, Any]:
        """The row as a fresh JSON-ready dict in canonical key order; absent optionals omitted."""
        row = {k: v for k, v in self.model_dump().items() if v is not None}
        if isinstance(self.source, Mapping):
            row["source"] = json.loads(json.dumps(self.source))  # deep copy, callers may mutate
        return row

    def __hash__(self) -> int:
        return hash(_canonical(self))

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> DatasetItem:
        """An item from a parsed row; ``ValueError`` naming the first bad field otherwise."""
        try:
            return cls.model_validate(dict(row))
        except ValidationError as exc:
            field, message = _problems(exc)[0]
            raise ValueError(f"field '{field}': {message}") from None


def _problems(exc: ValidationError) -> list[tuple[str | None, str]]:
    """One (field, message) per field at fault, in field order, in the loader's words."""
    out: list[tuple[str | None, str]] = []
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        field = str(loc[0]) if loc else None
        if field is None or field in seen:
            continue
        seen.add(field)
        kind = error["type"]
        if kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            message = f"unknown field; allowed fields are {', '.join(ALLOWED_FIELDS)}"
        elif kind == "value_error" and not isinstance(
            (error.get("ctx") or {}).get("error"), _Blank
        ):
            message = str(error["msg"]).removeprefix("Value error, ")
        else:
            message = _MUST.get(field, "is not valid")
        out.append((field, message))
    return out


def _canonical(item: DatasetItem) -> str:
    return json.dumps(
        item.to_json(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )


def content_hash(items: Iterable[DatasetItem]) -> str:
    """Hex sha256 of the items' canonical JSON (sorted keys, compact, UTF-8), one per line.

    Order-sensitive, independent of the file's formatting, and the same on every run and
    platform; any change to any field of any item changes it.
    """
    digest = hashlib.sha256(_HASH_PREFIX)
    for item in items:
        digest.update(_canonical(item).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


# --------------------------------------------------------------------------- reading


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_row(
    raw: str | bytes | Mapping[str, Any], location: str, line: int
) -> DatasetItem | list[DatasetIssue] | None:
    """An item, the issues that stop this row being one, or None for a blank line."""

    def issue(message: str, field: str | None = None) -> list[DatasetIssue]:
        return [DatasetIssue(location, message, line, field)]

    if isinstance(raw, Mapping):
        obj: Any = raw
    elif not isinstance(raw, (str, bytes)):  # a parsed row that is not an object
        return issue(f"expected a JSON object, got {_json_kind(raw)}")
    else:
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8-sig" if line == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                return issue(f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
        if not raw.strip():
            return None
        try:
            obj = json.loads(
                raw, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant
            )
        except _DuplicateKey as exc:
            return issue("appears more than once in the object", exc.key)
        except json.JSONDecodeError as exc:
            return issue(f"invalid JSON: {exc.msg} (column {exc.colno})")
        except (ValueError, RecursionError) as exc:
            return issue(f"invalid JSON: {exc if isinstance(exc, ValueError) else 'too deep'}")
        if not isinstance(obj, dict):
            return issue(f"expected a JSON object, got {_json_kind(obj)}")
    try:
        return DatasetItem.model_validate(obj)
    except ValidationError as exc:
        return [DatasetIssue(location, message, line, field) for field, message in _problems(exc)]


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def validate_rows(
    rows: Iterable[str | bytes | Mapping[str, Any]],
    *,
    path: str | os.PathLike[str] = "<rows>",
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> list[DatasetItem]:
    """Validate rows (JSONL lines, or already-parsed objects) and return them as items.

    Rows are numbered from 1; blank lines are skipped but keep their number. Every
    problem is collected, up to ``max_errors``, and raised together as one
    :class:`DatasetError` (``.errors`` holds them; ``.truncated`` says more were left out).
    Ids must be unique; a duplicate names both lines.
    """
    if max_errors < 1:
        raise ValueError("max_errors must be at least 1")
    location = os.fspath(path)
    items: list[DatasetItem] = []
    errors: list[DatasetIssue] = []
    first_line: dict[str, int] = {}
    for line, raw in enumerate(rows, start=1):
        parsed = _parse_row(raw, location, line)
        if parsed is None:
            continue
        if isinstance(parsed, list):
            errors.extend(parsed)
        elif parsed.id in first_line:
            errors.append(
                DatasetIssue(
                    location,
                    f"duplicate id {parsed.id!r} (first on line {first_line[parsed.id]})",
                    line,
                    "id",
                )
            )
        else:
            first_line[parsed.id] = line
            items.append(parsed)
        if len(errors) >= max_errors:
            raise DatasetError(errors[:max_errors], truncated=True)
    if errors:
        raise DatasetError(errors)
    return items


def _binary_lines(path: str | os.PathLike[str]) -> Iterator[bytes]:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise DatasetError(
            [DatasetIssue(os.fspath(path), f"cannot read: {exc.strerror or exc}")]
        ) from exc
    with handle:
        for raw in handle:
            yield raw.rstrip(b"\r\n") if raw.endswith(b"\n") else raw


def load_jsonl(
    path: str | os.PathLike[str], *, max_errors: int = DEFAULT_MAX_ERRORS
) -> list[DatasetItem]:
    """Every item in a JSONL dataset file, in file order.

    Raises :class:`DatasetError` listing up to ``max_errors`` problems (file, line, field)
    when the file is unreadable or any row is invalid; never returns a partial dataset.
    """
    return validate_rows(_binary_lines(path), path=path, max_errors=max_errors)


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[DatasetItem]:
    """Yield the items of a JSONL dataset file one at a time, without reading it whole.

    Stops with a :class:`DatasetError` (file, line, field) at the first invalid row or
    duplicate id; the items before it have already been yielded.
    """
    location = os.fspath(path)
    first_line: dict[str, int] = {}
    for line, raw in enumerate(_binary_lines(path), start=1):
        parsed = _parse_row(raw, location, line)
        if parsed is None:
            continue
        if isinstance(parsed, list):
            raise DatasetError(parsed)
        if parsed.id in first_line:
            raise DatasetError(
                [
                    DatasetIssue(
                        location,
                        f"duplicate id {parsed.id!r} (first on line {first_line[parsed.id]})",
                        line,
                        "id",
                    )
                ]
            )
        first_line[parsed.id] = line
        yield parsed


def write_jsonl(items: Iterable[DatasetItem], path: str | os.PathLike[str]) -> int:
    """Write items as UTF-8 JSONL (one compact object per line, canonical key order).

    The file is replaced atomically, parent directories are created, and duplicate ids
    are refused with :class:`DatasetError` before anything is written. Returns the
    number of rows written; :func:`load_jsonl` reads back equal items.
    """
    target = Path(path)
    lines: list[str] = []
    seen: dict[str, int] = {}
    for number, item in enumerate(items, start=1):
        if item.id in seen:
            raise DatasetError(
                [
                    DatasetIssue(
                        os.fspath(target),
                        f"duplicate id {item.id!r} (first at row {seen[item.id]})",
                        number,
                        "id",
                    )
                ]
            )
        seen[item.id] = number
        lines.append(json.dumps(item.to_json(), ensure_ascii=False, allow_nan=False))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(line + "\n" for line in lines)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(lines)
