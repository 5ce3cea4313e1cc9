"""``/prompts``: the versioned prompt registry (read-only; `codi-eval prompts seed` writes it)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from codi_eval.api import queries
from codi_eval.api.auth import connection
from codi_eval.api.errors import not_found
from codi_eval.api.operations import Inputs, operation
from codi_eval.api.schemas import Prompt, PromptList, PromptPath


def _prompt(row: Any) -> Prompt:
    return Prompt.model_validate(
        {**row._mapping, "ref": f"{row.name}@{row.version}", "variables": list(row.variables or [])}
    )


@operation(
    "GET",
    "/prompts",
    id="listPrompts",
    tag="prompts",
    summary="Every seeded prompt version.",
    response=PromptList,
)
async def list_prompts(request: web.Request, inputs: Inputs) -> PromptList:
    rows = await queries.prompts(await connection(request))
    return PromptList(prompts=[_prompt(r) for r in rows])


@operation(
    "GET",
    "/prompts/{name}",
    id="getPrompt",
    tag="prompts",
    summary="Every version of one prompt, or one version as name@version.",
    response=PromptList,
    path_params=PromptPath,
    errors=(404,),
)
async def get_prompt(request: web.Request, inputs: Inputs) -> PromptList:
    name, _, version = inputs.path.name.partition("@")
    rows = await queries.prompts(await connection(request), name)
    if version:
        rows = [r for r in rows if str(r.version) == version]
    if not rows:
        raise not_found(f"prompt {inputs.path.name!r}", field="name")
    return PromptList(prompts=[_prompt(r) for r in rows])
