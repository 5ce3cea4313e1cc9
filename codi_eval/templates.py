"""``{{variable}}`` templates: the one syntax every prompt in codi-eval uses.

Rendering is a single pass, so a value that itself contains ``{{x}}`` is inserted
literally and never expanded again; single braces (JSON examples in judge prompts)
are left alone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class TemplateError(ValueError):
    """A template could not be rendered; ``missing`` names the absent variables."""

    def __init__(self, message: str, missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing = missing or []


def variables(template: str) -> list[str]:
    """The distinct variable names a template uses, in order of first appearance."""
    return list(_variables(template))


@functools.lru_cache(maxsize=256)
def _variables(template: str) -> tuple[str, ...]:
    # A handful of prompt templates are rendered thousands of times per experiment.
    seen: dict[str, None] = {}
    for match in PLACEHOLDER.finditer(template):
        seen.setdefault(match.group(1), None)
    return tuple(seen)


def render(template: str, values: Mapping[str, Any], *, name: str | None = None) -> str:
    """Fill every ``{{var}}``; refuse with :class:`TemplateError` naming any missing variable.

    Values are converted with ``str()``; ``None`` counts as missing.
    """
    missing = [v for v in _variables(template) if values.get(v) is None]
    if missing:
        where = f" of prompt {name}" if name else ""
        raise TemplateError(
            f"missing variable{'s' if len(missing) > 1 else ''}{where}: {', '.join(missing)}",
            missing,
        )
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)
