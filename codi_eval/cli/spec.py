"""``codi-eval spec``: the experiment spec's JSON Schema, and checking a spec without running it."""

from __future__ import annotations

import json

import click

from codi_eval.cli import console, emit_json, out, run_async


@click.group()
def spec() -> None:
    """The experiment spec: its JSON Schema (for editors) and a check of a spec file."""


@spec.command()
def schema() -> None:
    """Print the JSON Schema of experiment specs.

    \b
    Point an editor at it, e.g. for VS Code's YAML extension:
      codi-eval spec schema > spec.schema.json
      # in experiments/x.yaml, first line:
      # yaml-language-server: $schema=../spec.schema.json
    """
    from codi_eval.experiments.spec import spec_json_schema

    click.echo(json.dumps(spec_json_schema(), indent=2))


@spec.command()
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the resolved spec as JSON.")
@run_async
async def check(spec_file: str, as_json: bool) -> None:
    """Validate SPEC (exit 2 naming file, line and field) and list its cells; runs nothing."""
    from codi_eval.experiments.spec import load_spec

    loaded = load_spec(spec_file)
    if as_json:
        emit_json({**loaded.resolved(), "cells": [c.key for c in loaded.cells()]})
        return
    cells = loaded.cells()
    out.print(f"{spec_file}: experiment {loaded.name}, {len(cells)} cells")
    for cell in cells:
        out.print(f"  {cell.key}")
    console.print("the spec is valid")


commands = [spec]
