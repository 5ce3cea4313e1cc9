"""``codi-eval summarize``: Chain of Density on one file or function, traced and judged."""

from __future__ import annotations

import ast
from pathlib import Path

import click

from codi_eval.cli import console, emit_json, open_store, out, run_async
from codi_eval.errors import InputError
from codi_eval.settings import get_settings

LANGUAGES = {
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".dart": "dart",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".rb": "ruby",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".cs": "csharp",
    ".swift": "swift",
}


def extract_function(source: str, name: str, path: str) -> str:
    """The source of function ``name`` (``Class.method`` for methods) in a Python file."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise InputError(f"not valid Python: {exc.msg}", file=path, line=exc.lineno) from None
    found: dict[str, ast.AST] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                qual = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    found[qual] = child
                visit(child, qual + ".")

    visit(tree, "")
    node = found.get(name) or next(
        (n for q, n in found.items() if q.rsplit(".", 1)[-1] == name), None
    )
    if node is None:
        have = ", ".join(sorted(found)) or "none"
        raise InputError(
            f"no function {name!r} (functions in the file: {have})", file=path, field="--function"
        )
    segment = ast.get_source_segment(source, node, padded=False)
    decorators = getattr(node, "decorator_list", [])
    if decorators:
        start = decorators[0].lineno - 1
        segment = "\n".join(source.splitlines()[start : getattr(node, "end_lineno", None)])
    import textwrap

    return textwrap.dedent(segment or "")


# What counts as "something to summarize" in a file: a declaration of one of these kinds.
SUMMARIZABLE = frozenset(
    {"function", "method", "constructor", "getter", "setter", "operator", "class", "mixin",
     "extension", "extension type", "enum"}
)  # fmt: skip


def require_something_to_summarize(code: str, language: str, path: str) -> None:
    """Refuse (exit 2) a file that is not code, or code with no function or class in it:
    ``summarize README.md`` must not "succeed" with a score for prose."""
    from codi_eval import code_facts

    if language == "text":
        known = ", ".join(sorted(LANGUAGES))
        raise InputError(
            f"not a source file codi-eval can summarize (its extension is not one of {known})",
            file=path,
        )
    if code_facts.canonical_language(language) is None:
        return  # token-based facts only: no parser to tell a function from prose
    facts = code_facts.analyze(code, language)
    if facts.kind in SUMMARIZABLE or any(d.kind in SUMMARIZABLE for d in facts.declarations):
        return
    raise InputError(f"no function or class to summarize in this {language} file", file=path)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--function", "function", default=None, help="Summarize only this function (Class.method ok)."
)
@click.option("--instruction", default=None, help="What the summary should focus on.")
@click.option(
    "--iterations",
    type=click.IntRange(1, 10),
    default=2,
    show_default=True,
    help="Chain of Density iterations (1..10).",
)
@click.option(
    "--model", default=None, help="offline, gemini-<version> or openai:<model> [default: offline]."
)
@click.option("--judge", default=None, help="Judge model [default: offline heuristic judge].")
@click.option(
    "--prompt",
    "prompt_ref",
    default="cod_iteration@2",
    show_default=True,
    help="Iteration prompt version.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def summarize(
    file: Path,
    function: str | None,
    instruction: str | None,
    iterations: int,
    model: str | None,
    judge: str | None,
    prompt_ref: str,
    as_json: bool,
) -> None:
    """Summarize FILE (or one --function in it) with Chain of Density, judge it, record the trace."""
    from codi_eval.prompts import ensure_seeded
    from codi_eval.summarize import DEFAULT_INSTRUCTION, build_summarizer
    from codi_eval.tracing import StoreSink, Tracer

    if not file.is_file():
        raise InputError("file not found", file=str(file))
    try:
        source = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", file=str(file)) from None
    language = LANGUAGES.get(file.suffix.lower(), "text")
    if function:
        if language != "python":
            raise InputError(
                "--function works on Python files only", file=str(file), field="--function"
            )
        code = extract_function(source, function, str(file))
    else:
        code = source
    if not code.strip():
        raise InputError("there is no code to summarize", file=str(file))
    if not function:
        require_something_to_summarize(code, language, str(file))
    settings = get_settings()
    async with open_store(settings) as store:
        await ensure_seeded(store, settings.prompts_dir)
        sink = StoreSink(store)
        tracer = Tracer(sink)
        summarizer = await build_summarizer(
            store,
            tracer,
            model=model or settings.default_model,
            judge=judge or settings.default_judge,
            iteration_prompt=prompt_ref,
            density_iterations=iterations,
            prompts_dir=settings.prompts_dir,
        )
        exporting = settings.opik_configured
        from codi_eval.models.base import ModelError

        try:
            outcome = await summarizer.summarize(
                code=code,
                instruction=instruction or DEFAULT_INSTRUCTION,
                language=language,
                trace_kwargs={
                    "export": exporting,
                    "tags": ["cli"],
                    "metadata": {"file": str(file), "function": function},
                },
            )
        except ModelError as exc:
            await sink.close()
            from codi_eval.cli import Failed

            raise Failed(f"the model call failed: {exc}") from None
        await sink.close()
        if exporting:
            from codi_eval.cli.opik import sync_after_work

            await sync_after_work(store, settings, quiet=as_json)
    j = outcome.judgement
    data = {
        "summary": outcome.summary,
        "trace_id": str(outcome.trace_id),
        "quality_score": outcome.quality_score,
        "quality_reason": j.reason if j else None,
        "judgement_status": j.status if j else None,
        "iterations": [
            {
                "iteration": it.number,
                "missing_entities": it.missing_entities,
                "added_entities": it.added_entities,
                "word_count": it.word_count,
                "entity_density": round(it.entity_density, 4),
                "summary": it.summary,
            }
            for it in outcome.iterations
        ],
        "metrics": {m.name: m.value for m in outcome.metrics},
        "model": summarizer.model.name,
        "tokens": outcome.usage.total_tokens,
        "cost": outcome.cost,
    }
    if as_json:
        emit_json(data)
        return
    for it in outcome.iterations:
        console.print(
            f"iteration {it.number}: +{', '.join(it.missing_entities) or '—'} "
            f"({it.word_count} words, density {it.entity_density:.3f})"
        )
    out.print(outcome.summary)
    score = "failed to parse" if j and not j.ok else ("—" if j is None else f"{j.score:.2f}")
    out.print(f"\nquality {score}: {j.reason if j else ''}")
    if j and not j.ok:
        out.print(f"raw judge answer: {j.raw}")
    out.print(f"trace {outcome.trace_id}")


commands = [summarize]
