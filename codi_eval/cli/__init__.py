"""The ``codi-eval`` command: a thin layer that parses input, calls services, prints.

Exit codes: 0 done, 1 the work failed, 2 bad input (with file, line and field).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from codi_eval.errors import InputError
from codi_eval.settings import Settings, SettingsError, get_settings
from codi_eval.store.engine import Store, StoreError

T = TypeVar("T")
console = Console(stderr=True, highlight=False)
# Tables stay readable when piped or captured (rich would otherwise assume 80 columns).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 220)


class Failed(Exception):
    """The work itself failed (exit 1)."""


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


def run_async(coro_fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async command body and map errors onto exit codes with a clear message."""

    @functools.wraps(coro_fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return asyncio.run(coro_fn(*args, **kwargs))
        except (InputError, SettingsError) as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            sys.exit(2)
        except ValueError as exc:
            from codi_eval.datasets import DatasetError

            if not isinstance(exc, DatasetError):
                raise
            console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            sys.exit(2)
        except (StoreError, Failed) as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            sys.exit(1)
        except KeyboardInterrupt:
            console.print("interrupted")
            sys.exit(130)

    return wrapper


@asynccontextmanager
async def open_store(settings: Settings | None = None) -> AsyncIterator[Store]:
    settings = settings or get_settings()
    store = await Store.open(settings.database_url)
    try:
        yield store
    finally:
        await store.close()


def iter_commands() -> Iterator[click.Command]:
    for module_name in (
        "db",
        "prompts",
        "datasets",
        "summarize",
        "run",
        "worker",
        "spec",
        "opik",
        "users",
        "serve",
        "analysis",
    ):
        try:
            module = __import__(f"codi_eval.cli.{module_name}", fromlist=["commands"])
        except ModuleNotFoundError as exc:
            if exc.name == f"codi_eval.cli.{module_name}":
                continue
            raise
        yield from module.commands


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="codi-eval")
def main() -> None:
    """codi-eval: evaluate Chain-of-Density code summaries with judges, traces and statistics.

    \b
    Store: CODI_EVAL_DATABASE_URL (default sqlite:///codi_eval.db; PostgreSQL as
    postgresql+psycopg://user@host/db). Gemini: GEMINI_API_KEY. Opik: OPIK_URL_OVERRIDE,
    OPIK_API_KEY, OPIK_WORKSPACE, OPIK_PROJECT_NAME.

    \b
    Start with:  codi-eval run experiments/quickstart.yaml
    """


for _command in iter_commands():
    main.add_command(_command)
