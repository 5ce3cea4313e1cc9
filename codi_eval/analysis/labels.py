"""Short, distinguishable labels for an experiment's cells, and finding a cell or an item by
what a user types.

A cell key spells every factor (``cod_iteration@2/d3/offline``); in a table only the factors
that vary between the cells tell rows apart, so the label keeps those (``v2/d3``) and a
legend gives the full keys and what every cell shares.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from codi_eval.errors import NotFound

#: Longer labels than this fall back to numbers (c1, c2, ...) with the legend.
MAX_LABEL = 18


class CellLike(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def prompt(self) -> str: ...
    @property
    def density_iterations(self) -> int: ...
    @property
    def model(self) -> str: ...


@dataclass(frozen=True)
class CellLabels:
    """``labels`` maps each cell key to its label; ``shared`` names what every cell has in
    common (``model offline``); ``abbreviated`` says whether a label differs from its key."""

    labels: dict[str, str]
    shared: list[str]

    @property
    def abbreviated(self) -> bool:
        return any(label != key for key, label in self.labels.items())

    def legend(self) -> list[str]:
        """One line per cell (``v1/d1 = cod_iteration@1/d1/offline``), then what is shared."""
        lines = [f"{label} = {key}" for key, label in self.labels.items() if label != key]
        if self.shared:
            lines.append("every cell: " + ", ".join(self.shared))
        return lines


def _prompt_parts(prompts: Sequence[str]) -> dict[str, str]:
    names = {p.partition("@")[0] for p in prompts}
    if len(names) == 1:
        return {p: "v" + (p.partition("@")[2] or "?") for p in prompts}
    return {p: p for p in prompts}


def cell_labels(cells: Iterable[CellLike]) -> CellLabels:
    """Labels built from the factors that vary: prompt version (``v2``, or the full
    ``name@version`` when prompt names differ), density (``d3``) and model."""
    cells = list(cells)
    if not cells:
        return CellLabels({}, [])
    prompts = sorted({c.prompt for c in cells})
    densities = sorted({c.density_iterations for c in cells})
    models = sorted({c.model for c in cells})
    prompt_part = _prompt_parts(prompts)
    shared = []
    if len(prompts) == 1:
        shared.append(f"prompt {prompts[0]}")
    if len(densities) == 1:
        shared.append(f"{densities[0]} density iterations")
    if len(models) == 1:
        shared.append(f"model {models[0]}")
    labels: dict[str, str] = {}
    for c in cells:
        parts = []
        if len(prompts) > 1:
            parts.append(prompt_part[c.prompt])
        if len(densities) > 1 or (len(prompts) == 1 and len(models) == 1):
            parts.append(f"d{c.density_iterations}")
        if len(models) > 1:
            parts.append(c.model)
        labels[c.key] = "/".join(parts)
    values = list(labels.values())
    if len(set(values)) != len(values) or any(len(v) > MAX_LABEL for v in values):
        labels = {c.key: f"c{i}" for i, c in enumerate(cells, start=1)}
    return CellLabels(labels, shared)


def _in(store: str | None) -> str:
    return f" in the store {store}" if store else ""


def suggest(ref: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(ref, list(known), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def resolve_cell(ref: str, cells: Sequence[CellLike], *, experiment: str, store: str | None) -> str:
    """The key of the cell ``ref`` names: its key or its label in the results table.
    :class:`NotFound` lists the cells and suggests the closest one."""
    keys = [c.key for c in cells]
    if ref in keys:
        return ref
    labels = cell_labels(cells).labels
    by_label = {label: key for key, label in labels.items()}
    if ref in by_label:
        return by_label[ref]
    listing = ", ".join(
        f"{key} ({labels[key]})" if labels[key] != key else key for key in keys[:12]
    ) + (", ..." if len(keys) > 12 else "")
    raise NotFound(
        f"experiment {experiment}{_in(store)} has no cell {ref!r} "
        f"(its cells: {listing or 'none'}){suggest(ref, [*keys, *by_label])}",
        field="cell",
    )


def resolve_item(ref: str, items: Sequence[str], *, experiment: str, store: str | None) -> str:
    """The item key ``ref`` names: the key itself, or the unique key ending in ``:ref``
    (``b64encode`` for ``base64:b64encode``). :class:`NotFound` suggests the closest."""
    if ref in items:
        return ref
    tails = [k for k in items if k.rsplit(":", 1)[-1] == ref or k.endswith(ref)]
    if len(tails) == 1:
        return tails[0]
    if len(tails) > 1:
        raise NotFound(
            f"item {ref!r} matches {len(tails)} items of experiment {experiment}: "
            f"{', '.join(tails[:8])}; give the full key",
            field="item",
        )
    raise NotFound(
        f"experiment {experiment}{_in(store)} has no item {ref!r} "
        f"({len(items)} items, e.g. {', '.join(items[:3])}){suggest(ref, items)}",
        field="item",
    )
