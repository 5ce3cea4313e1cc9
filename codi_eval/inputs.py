"""Reading what users hand us — YAML specs, JSON lines — safely, and validating it with
pydantic models whose errors name the file, the line and the field.

Hostile files stop here with an :class:`~codi_eval.errors.InputError` (exit 2), never a
traceback: bytes that are not UTF-8, files over the size limit, YAML alias bombs ("billion
laughs"), nesting deeper than anyone writes by hand, NUL characters and lone surrogates.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from codi_eval.errors import InputError

MAX_DOCUMENT_BYTES = 1024 * 1024  # a spec or prompt file is a few KiB
MAX_NODES = 100_000  # values in one document, counting every alias expansion
MAX_DEPTH = 64

# -------------------------------------------------------------------------- messages

_KINDS = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "empty",
}


def kind_of(value: Any) -> str:
    """How a value reads to a person ("a string", "a list", "nothing")."""
    if value is None:
        return "nothing"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def field_path(loc: Sequence[int | str]) -> str:
    """``("matrix", "model", 0)`` → ``matrix.model[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(error: Mapping[str, Any], allowed: Sequence[str] = ()) -> str:
    """One pydantic error in plain words, without the field (the caller names it)."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    given = error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1]) if error.get("loc") else ""
        close = difflib.get_close_matches(key, list(allowed), n=1)
        if close:
            return f"unknown key; did you mean '{close[0]}'?"
        return f"unknown key (allowed: {', '.join(allowed) or 'none'})"
    if kind in _KINDS:
        return f"must be {_KINDS[kind]}, not {kind_of(given)}"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"must have at least {least} items"
    if kind == "too_long":
        return f"must be at most {ctx.get('max_length')} long"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bounds = {
            "greater_than_equal": f">= {ctx.get('ge')}",
            "greater_than": f"> {ctx.get('gt')}",
            "less_than_equal": f"<= {ctx.get('le')}",
            "less_than": f"< {ctx.get('lt')}",
        }
        return f"must be {bounds[kind]}, not {given!r}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, not {given!r}"
    if kind == "string_pattern_mismatch":
        return f"does not have the expected form, got {given!r}"
    return str(error.get("msg", "is not valid")).removeprefix("Value error, ")


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """Field names of the model that holds ``loc``'s last key (for did-you-mean)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _inner_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def validation_error(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    file: str | None,
    lines: LineMap | None = None,
    line: int | None = None,
) -> InputError:
    """The first problem as an :class:`InputError` naming file, line and field."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    where = field_path(loc) or None
    message = describe(error, _fields_at(model, loc))
    found_line = lines.get(where or "") if lines is not None else line
    return InputError(message, file=file, line=found_line or line, field=where)


# --------------------------------------------------------------------------------- YAML


class LineMap:
    """Line numbers of keys and values in a YAML document, by dotted path."""

    def __init__(self, node: yaml.Node | None) -> None:
        self.lines: dict[str, int] = {}
        if node is not None:
            self._walk(node, "", 0)

    def _walk(self, node: yaml.Node, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = f"{path}.{key.value}" if path else str(key.value)
                self.lines[sub] = key.start_mark.line + 1
                self._walk(value, sub, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, f"{path}[{i}]", depth + 1)

    def get(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            if path.endswith("]"):
                path = path[: path.rindex("[")]
            else:
                path = path.rsplit(".", 1)[0] if "." in path else ""
        return None


def read_text(path: str | Path, *, limit: int = MAX_DOCUMENT_BYTES) -> str:
    """A document's text: UTF-8, at most ``limit`` bytes, with no NUL characters."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > limit:
            raise InputError(
                f"is {size:,} bytes; a document here is at most {limit:,}", file=str(path)
            )
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror or exc}", file=str(path)) from None
    return decode(data, str(path))


def decode(data: bytes, where: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"is not UTF-8 text (byte {exc.start}); is it a binary file?", file=where, line=line
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InputError("holds a NUL character; is it a binary file?", file=where, line=line)
    return text


def _expanded_size(value: Any, budget: list[int], depth: int = 0) -> None:
    # Aliases share one object; walking counts each use, so a "billion laughs" spends the
    # budget after MAX_NODES steps instead of expanding to 10^9 values later.
    budget[0] -= 1
    if budget[0] < 0:
        raise InputError(f"expands to more than {MAX_NODES:,} values (YAML aliases?)")
    if depth > MAX_DEPTH:
        raise InputError(f"is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for k, v in value.items():
            _expanded_size(k, budget, depth + 1)
            _expanded_size(v, budget, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _expanded_size(v, budget, depth + 1)


def load_yaml(text: str, where: str) -> tuple[Any, LineMap]:
    """The YAML document in ``text`` (safe types only) and its line map."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            file=where,
            line=mark.line + 1 if mark else None,
        ) from None
    except RecursionError:
        raise InputError(f"is nested deeper than {MAX_DEPTH} levels", file=where) from None
    try:
        _expanded_size(data, [MAX_NODES])
    except InputError as exc:
        raise InputError(exc.message, file=where) from None
    return data, LineMap(node)


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored (NUL, lone surrogate), or None."""
    if "\x00" in value:
        return "must not contain NUL characters (PostgreSQL cannot store them)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (\\ud800-\\udfff), which is not valid Unicode text"
    return None


def strings_in(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value, with its path (for NUL / surrogate checks)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings_in(str(k), f"{path}.{k}" if path else str(k))
            yield from strings_in(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings_in(v, f"{path}[{i}]")
