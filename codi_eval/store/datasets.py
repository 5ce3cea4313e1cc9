"""Dataset versions in the store: immutable, keyed by the content hash of their items."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from codi_eval.datasets import DatasetItem as ItemRow
from codi_eval.datasets import content_hash, load_jsonl
from codi_eval.ids import uuid7
from codi_eval.store.engine import Store
from codi_eval.store.models import Dataset, DatasetItem

_CHUNK = 1000


@dataclass(frozen=True)
class ImportResult:
    dataset: Dataset
    created: bool


def dataset_name_for(path: str | os.PathLike[str]) -> str:
    return Path(path).name.removesuffix(".jsonl")


async def import_items(
    store: Store, items: list[ItemRow], *, name: str, source_path: str | None = None
) -> ImportResult:
    """Store ``items`` as a version of dataset ``name``; the same content returns the same version.

    Two processes importing at once (two runs of one new spec): one insert wins the unique
    (name, content hash) and (name, version); the other reads the winner's version.
    """
    digest = content_hash(items)
    for attempt in range(3):
        try:
            return await _import_once(store, items, name, digest, source_path)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _import_once(
    store: Store, items: list[ItemRow], name: str, digest: str, source_path: str | None
) -> ImportResult:
    async with store.transaction() as session:
        existing = await session.scalar(
            select(Dataset).where(Dataset.name == name, Dataset.content_hash == digest)
        )
        if existing is not None:
            return ImportResult(existing, created=False)
        latest = await session.scalar(select(func.max(Dataset.version)).where(Dataset.name == name))
        dataset = Dataset(
            id=uuid7(),
            name=name,
            version=(latest or 0) + 1,
            content_hash=digest,
            item_count=len(items),
            source_path=source_path,
        )
        session.add(dataset)
        await session.flush()
        for start in range(0, len(items), _CHUNK):
            rows = [
                {
                    "id": uuid7(),
                    "dataset_id": dataset.id,
                    "position": start + offset,
                    "item_key": item.id,
                    "language": item.language,
                    "code": item.code,
                    "instruction": item.instruction,
                    "reference": item.reference,
                    "source": item.source,
                }
                for offset, item in enumerate(items[start : start + _CHUNK])
            ]
            await session.execute(insert(DatasetItem), rows)
    return ImportResult(dataset, created=True)


async def import_file(
    store: Store, path: str | os.PathLike[str], *, name: str | None = None
) -> ImportResult:
    """Validate a JSONL file (DatasetError names file, line, field) and store it as a version."""
    items = load_jsonl(path)
    return await import_items(
        store, items, name=name or dataset_name_for(path), source_path=os.fspath(path)
    )


async def list_datasets(store: Store) -> list[Dataset]:
    async with store.session() as session:
        return list(
            (await session.scalars(select(Dataset).order_by(Dataset.name, Dataset.version))).all()
        )
