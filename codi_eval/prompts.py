"""Versioned prompt templates: ``configs/prompts/*.yaml`` seeded into the store.

A prompt version is immutable: re-seeding an unchanged file does nothing, and a
changed template under an existing (name, version) is refused — make a new version.

A judge prompt also declares the scale its rubric asks for (``scale: {min: 0, max: 1,
integer: false}``). The scale is read from the file, not stored with the version: the
template hash covers the template text only, so declaring a scale for an existing version
is not a template change and seeding stays idempotent on stores seeded before scales
existed. :func:`prompt_scale` finds the declaration for a stored template.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from codi_eval.errors import InputError, NotFound
from codi_eval.judging.scale import Scale
from codi_eval.store.engine import Store
from codi_eval.store.models import Prompt
from codi_eval.templates import render, variables

NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,100}$")
REF = re.compile(r"^(?P<name>[a-z][a-z0-9_\-]{0,100})(?:@(?P<version>\d+))?$")
FIELDS = {"name", "version", "template", "description", "scale"}


class PromptConflict(InputError):
    pass


@dataclass(frozen=True)
class PromptFile:
    name: str
    version: int
    template: str
    description: str | None
    path: str
    scale: Scale | None = None  # a judge prompt's declared scale; not part of the hash

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def template_hash(self) -> str:
        return template_hash(self.template)


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"cod_iteration@2"`` → ``("cod_iteration", 2)``; a bare name means the latest version."""
    match = REF.match(ref.strip())
    if not match:
        raise InputError(
            f"not a prompt reference: {ref!r} (expected name@version, e.g. cod_iteration@1)"
        )
    version = match.group("version")
    return match.group("name"), int(version) if version else None


def _line_of(node: yaml.Node | None, key: str) -> int | None:
    if isinstance(node, yaml.MappingNode):
        for k, _v in node.value:
            if getattr(k, "value", None) == key:
                return k.start_mark.line + 1
    return None


def load_prompt_file(path: Path) -> PromptFile:
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}",
            file=str(path),
            line=mark.line + 1 if mark else None,
        ) from exc
    if not isinstance(data, dict):
        raise InputError(
            "a prompt file holds one mapping with name, version, template", file=str(path)
        )
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise InputError(
            f"unknown key (allowed: {', '.join(sorted(FIELDS))})",
            file=str(path),
            line=_line_of(node, unknown[0]),
            field=unknown[0],
        )
    for key in ("name", "version", "template"):
        if key not in data:
            raise InputError("is required", file=str(path), field=key)
    name, version, template = data["name"], data["version"], data["template"]
    if not isinstance(name, str) or not NAME.match(name):
        raise InputError(
            "must be lower-case letters, digits, _ or -",
            file=str(path),
            line=_line_of(node, "name"),
            field="name",
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(
            "must be a whole number >= 1",
            file=str(path),
            line=_line_of(node, "version"),
            field="version",
        )
    if not isinstance(template, str) or not template.strip():
        raise InputError(
            "must be a non-empty string",
            file=str(path),
            line=_line_of(node, "template"),
            field="template",
        )
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise InputError(
            "must be a string",
            file=str(path),
            line=_line_of(node, "description"),
            field="description",
        )
    return PromptFile(
        name, version, template, description, str(path), _scale(data.get("scale"), path, node)
    )


def _scale(value: Any, path: Path, node: yaml.Node | None) -> Scale | None:
    if value is None:
        return None
    from pydantic import ValidationError

    problem = "must be a mapping such as {min: 1, max: 5, integer: true}"
    if isinstance(value, dict):
        try:
            return Scale.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            problem = f"{where + ': ' if where else ''}{message}"
    raise InputError(problem, file=str(path), line=_line_of(node, "scale"), field="scale")


def load_prompt_dir(directory: Path) -> list[PromptFile]:
    if not directory.is_dir():
        raise InputError("prompt directory not found", file=str(directory))
    files = [load_prompt_file(p) for p in sorted(directory.glob("*.yaml"))]
    seen: dict[str, PromptFile] = {}
    for pf in files:
        if pf.ref in seen:
            raise PromptConflict(f"{pf.ref} is also defined in {seen[pf.ref].path}", file=pf.path)
        seen[pf.ref] = pf
    return files


def prompt_scale(ref: str, template: str, directory: Path) -> Scale | None:
    """The scale the prompt file of ``ref`` declares, if that file holds ``template``.

    ``None`` when the directory has no such file, the file declares no scale, or its
    template differs from ``template`` (then the declaration belongs to another text).
    """
    if not directory.is_dir():
        return None
    # Keyed on the files' modification times too, so an edited file is read again.
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in directory.glob("*.yaml")))
    return _prompt_scale(str(directory.resolve()), stamp, ref, template_hash(template))


@functools.lru_cache(maxsize=64)
def _prompt_scale(
    directory: str, stamp: tuple[tuple[str, int], ...], ref: str, digest: str
) -> Scale | None:
    # Judges are built per run and per repeat: the files are parsed once, not every time.
    for pf in load_prompt_dir(Path(directory)):
        if pf.ref == ref and pf.template_hash == digest:
            return pf.scale
    return None


@dataclass(frozen=True)
class SeedReport:
    created: list[str]
    unchanged: list[str]


async def seed_prompts(store: Store, directory: Path) -> SeedReport:
    """Load every prompt file into the store; idempotent; refuses changed versions (exit 2).

    Processes seeding at once (two runs on a new store): one insert wins each unique
    (name, version); the others read the winner's rows and check them like any other.
    """
    files = load_prompt_dir(directory)
    for attempt in range(3):
        try:
            return await _seed_once(store, files)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _seed_once(store: Store, files: list[PromptFile]) -> SeedReport:
    created: list[str] = []
    unchanged: list[str] = []
    async with store.transaction() as session:
        existing = {(p.name, p.version): p for p in (await session.scalars(select(Prompt))).all()}
        for pf in files:
            current = existing.get((pf.name, pf.version))
            if current is None:
                session.add(
                    Prompt(
                        name=pf.name,
                        version=pf.version,
                        template=pf.template,
                        variables=variables(pf.template),
                        description=pf.description,
                        template_hash=pf.template_hash,
                    )
                )
                created.append(pf.ref)
            elif current.template_hash != pf.template_hash:
                raise PromptConflict(
                    f"{pf.ref} is already seeded with a different template; versions are "
                    f"immutable, so give the changed template a new version (e.g. version: "
                    f"{max(v for (n, v) in existing if n == pf.name) + 1})",
                    file=pf.path,
                    field="template",
                )
            else:
                unchanged.append(pf.ref)
    return SeedReport(created, unchanged)


async def ensure_seeded(store: Store, directory: Path) -> None:
    """Seed the shipped prompts before work that uses them (a missing directory is skipped:
    an installed package may rely on prompts seeded earlier)."""
    if directory.is_dir():
        await seed_prompts(store, directory)


async def list_prompts(store: Store, name: str | None = None) -> list[Prompt]:
    async with store.session() as session:
        stmt = select(Prompt).order_by(Prompt.name, Prompt.version)
        if name is not None:
            stmt = stmt.where(Prompt.name == name)
        return list((await session.scalars(stmt)).all())


async def get_prompt(store: Store, ref: str) -> Prompt:
    """The prompt a reference names; :class:`NotFound` lists the versions that do exist."""
    name, version = parse_ref(ref)
    versions = await list_prompts(store, name)
    if not versions:
        raise NotFound(
            f"unknown prompt {name!r}; run `codi-eval prompts list` to see what is seeded"
        )
    if version is None:
        return versions[-1]
    for p in versions:
        if p.version == version:
            return p
    have = ", ".join(p.ref for p in versions)
    raise NotFound(f"unknown prompt version {ref!r} (have: {have})")


def render_prompt(prompt: Prompt, values: dict[str, Any]) -> str:
    return render(prompt.template, values, name=prompt.ref)
