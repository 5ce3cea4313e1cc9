"""The prompt registry: idempotent seeding, immutable versions, rendering that names what is missing."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codi_eval.errors import InputError, NotFound
from codi_eval.judging.scale import Scale
from codi_eval.prompts import (
    PromptConflict,
    get_prompt,
    list_prompts,
    load_prompt_file,
    parse_ref,
    prompt_scale,
    render_prompt,
    seed_prompts,
)
from codi_eval.store.engine import Store
from codi_eval.templates import TemplateError, render, variables
from tests.cli_helpers import ROOT, run_cli

PROMPTS = ROOT / "configs" / "prompts"


async def test_seeding_twice_changes_nothing_the_second_time(store: Store) -> None:
    first = await seed_prompts(store, PROMPTS)
    assert {"cod_iteration@1", "cod_iteration@2", "cod_final@1", "summary_judge@1"} <= set(
        first.created
    )
    second = await seed_prompts(store, PROMPTS)
    assert second.created == []
    assert sorted(second.unchanged) == sorted(first.created)
    assert len(await list_prompts(store)) == len(first.created)


async def test_a_changed_template_under_an_existing_version_is_refused(
    store: Store, tmp_path: Path
) -> None:
    shutil.copytree(PROMPTS, tmp_path / "p")
    await seed_prompts(store, tmp_path / "p")
    target = tmp_path / "p" / "cod_final_v1.yaml"
    target.write_text(target.read_text().replace("extremely dense", "very dense"))
    with pytest.raises(PromptConflict) as info:
        await seed_prompts(store, tmp_path / "p")
    assert "cod_final_v1.yaml" in str(info.value) and "new version" in str(info.value)
    # nothing half-applied: the stored template is still the original
    assert "extremely dense" in (await get_prompt(store, "cod_final@1")).template


async def test_references_resolve_and_unknown_versions_list_what_exists(store: Store) -> None:
    await seed_prompts(store, PROMPTS)
    assert (await get_prompt(store, "cod_iteration@2")).version == 2
    assert (await get_prompt(store, "cod_iteration")).version == 2  # latest
    with pytest.raises(NotFound, match="cod_iteration@1, cod_iteration@2"):
        await get_prompt(store, "cod_iteration@9")
    prompt = await get_prompt(store, "summary_judge@1")
    with pytest.raises(TemplateError, match="summary"):
        render_prompt(prompt, {"code": "x", "instruction": "y"})


def test_prompt_file_errors_name_the_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: one\ntemplate: hi\n")
    with pytest.raises(InputError) as info:
        load_prompt_file(bad)
    assert str(info.value).startswith(f"{bad}:2: field 'version'")
    bad.write_text("name: x\nversion: 1\ntemplate: hi\ntemplat: typo\n")
    with pytest.raises(InputError, match="field 'templat'"):
        load_prompt_file(bad)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_prompt_file(bad)


def test_parse_ref() -> None:
    assert parse_ref("cod_iteration@2") == ("cod_iteration", 2)
    assert parse_ref("summary_judge") == ("summary_judge", None)
    with pytest.raises(InputError):
        parse_ref("Bad Ref@x")


names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
text_parts = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=20)


@given(st.lists(st.tuples(text_parts, names), min_size=1, max_size=6), st.data())
def test_render_fills_every_placeholder_exactly_once(
    parts: list[tuple[str, str]], data: st.DataObject
) -> None:
    template = "".join(f"{text}{{{{ {name} }}}}" for text, name in parts)
    # Values may themselves look like placeholders; they must be inserted literally.
    values = {
        name: data.draw(st.text(max_size=15) | st.just("{{" + name + "}}")) for _, name in parts
    }
    out = render(template, values)
    assert out == "".join(f"{text}{values[name]}" for text, name in parts)
    assert variables(template) == list(dict.fromkeys(name for _, name in parts))


@given(st.lists(names, min_size=1, max_size=5, unique=True), st.data())
def test_render_names_every_missing_variable(all_names: list[str], data: st.DataObject) -> None:
    template = " ".join("{{" + n + "}}" for n in all_names)
    given_names = data.draw(st.sets(st.sampled_from(all_names), max_size=len(all_names) - 1))
    with pytest.raises(TemplateError) as info:
        render(template, {n: "v" for n in given_names})
    assert set(info.value.missing) == set(all_names) - given_names


def test_cli_seed_is_idempotent_and_a_changed_version_exits_2(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    prompts = tmp_path / "prompts"
    shutil.copytree(PROMPTS, prompts)
    first = run_cli("prompts", "seed", "--dir", str(prompts), "--json", db_url=db)
    assert first.returncode == 0, first.stderr
    second = run_cli("prompts", "seed", "--dir", str(prompts), db_url=db)
    assert second.returncode == 0 and "0 created" in second.stdout
    (prompts / "cod_iteration_v1.yaml").write_text(
        (prompts / "cod_iteration_v1.yaml").read_text().replace("concise", "brief")
    )
    third = run_cli("prompts", "seed", "--dir", str(prompts), db_url=db)
    assert third.returncode == 2
    assert "cod_iteration_v1.yaml" in third.stderr and "cod_iteration@1" in third.stderr
    listed = run_cli("prompts", "list", "--json", db_url=db)
    assert listed.returncode == 0 and '"cod_iteration@1"' in listed.stdout


def _without_scales(source: Path, target: Path) -> Path:
    """The prompt files as they were before scales were declared (same templates)."""
    target.mkdir()
    for path in source.glob("*.yaml"):
        lines = path.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if not ln.startswith(("scale:", "# The scale the rubric"))]
        (target / path.name).write_text("".join(kept))
    return target


async def test_declaring_a_scale_is_not_a_template_change_on_a_store_seeded_before(
    store: Store, tmp_path: Path
) -> None:
    old = _without_scales(PROMPTS, tmp_path / "old")
    for name in ("summary_judge_v2.yaml", "pairwise_judge_v1.yaml"):
        (old / name).unlink()  # versions added with scales
    before = await seed_prompts(store, old)
    assert "summary_judge@1" in before.created
    after = await seed_prompts(store, PROMPTS)
    assert sorted(after.created) == ["pairwise_judge@1", "summary_judge@2"]
    assert set(before.created) <= set(after.unchanged)
    again = await seed_prompts(store, PROMPTS)
    assert again.created == []
    # The stored template is the one the scale was declared for, so the scale is found.
    stored = await get_prompt(store, "summary_judge@1")
    assert prompt_scale(stored.ref, stored.template, PROMPTS) == Scale(min=0, max=1)
    v2 = await get_prompt(store, "summary_judge@2")
    assert prompt_scale(v2.ref, v2.template, PROMPTS) == Scale(min=1, max=5, integer=True)
    # ... and not for another text under the same reference.
    assert prompt_scale(stored.ref, stored.template + "x", PROMPTS) is None


def test_cli_seed_stays_idempotent_when_scales_are_declared(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    old = _without_scales(PROMPTS, tmp_path / "old")
    assert run_cli("prompts", "seed", "--dir", str(old), db_url=db).returncode == 0
    result = run_cli("prompts", "seed", "--dir", str(PROMPTS), "--json", db_url=db)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["created"] == []


@pytest.mark.parametrize(
    ("scale", "message"),
    [
        ("scale: 5", "must be a mapping"),
        ("scale: {min: 5, max: 1}", "min must be below max"),
        ("scale: {min: 0, max: 1, integer: true, step: 2}", "step"),
        ("scale: {min: 0.5, max: 5, integer: true}", "whole-number"),
    ],
)
def test_a_bad_scale_names_the_file_line_and_field(
    tmp_path: Path, scale: str, message: str
) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text(f"name: j\nversion: 1\n{scale}\ntemplate: 'Rate {{{{summary}}}}'\n")
    with pytest.raises(InputError) as info:
        load_prompt_file(path)
    assert (info.value.field, info.value.line) == ("scale", 3)
    assert message in str(info.value) and str(path) in str(info.value)


async def test_processes_seeding_at_once_seed_each_prompt_once(store: Store) -> None:
    # Two `codi-eval run`s on a new store seed the shipped prompts at the same moment.
    reports = await asyncio.gather(*(seed_prompts(store, PROMPTS) for _ in range(4)))
    created = [ref for r in reports for ref in r.created]
    assert sorted(created) == sorted(set(created)) and created  # each once, by someone
    assert all(set(r.created) | set(r.unchanged) == set(created) for r in reports)
