"""The fact types every language analyser fills in: :class:`CodeFacts` and :class:`Declaration`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Declaration:
    """One declaration found in the code: a function, method, constructor, class, ...

    ``kind`` is one of ``function``, ``method``, ``constructor``, ``getter``, ``setter``,
    ``operator``, ``class``, ``mixin``, ``extension``, ``extension type``, ``enum``,
    ``typedef``, ``field``, ``variable``. ``qualname`` is dotted (``Counter.build``);
    lines are 1-based and count from the first line of the code analysed. ``doc`` is the
    declaration's own doc comment as written (``///`` lines, ``/** */``, a docstring),
    ``None`` when it has none. The byte offsets are those of the UTF-8 encoded code, and
    span the declaration with its annotations but without its doc comment.
    """

    kind: str
    name: str
    qualname: str
    line: int
    end_line: int
    start_byte: int = 0
    end_byte: int = 0
    doc: str | None = None
    doc_line: int | None = None
    annotations: tuple[str, ...] = ()
    has_error: bool = False  # the parser found a syntax error inside it


@dataclass(frozen=True)
class CodeFacts:
    """What a function, class or module does, as far as its syntax tells.

    The first block of fields is what every language fills in; the rest is filled in
    where the language has the construct (``widget`` only for Flutter code) and keeps its
    empty default otherwise. Treat instances as read-only: :func:`analyze` memoises them.
    """

    language: str
    name: str | None = None
    # "function" | "method" | "constructor" | "getter" | "setter" | "operator" | "class"
    # | "mixin" | "extension" | "extension type" | "enum" | "module" | "unknown"
    kind: str = "unknown"
    params: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # dotted, first-appearance order
    returns: bool = False
    yields: bool = False
    loops: list[str] = field(default_factory=list)  # "for", "while", "comprehension", ...
    recursive: bool = False  # a function or method that calls itself by name
    raises: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    parse_ok: bool = False
    # --- added for Dart, JavaScript and the other tree-sitter languages
    declarations: list[Declaration] = field(default_factory=list)  # every one, in order
    bases: list[str] = field(default_factory=list)  # superclass, mixins, interfaces, `on` types
    catches: list[str] = field(default_factory=list)  # exception types caught
    handles_errors: bool = False  # has a try/catch (typed or not)
    literals: list[str] = field(default_factory=list)  # short string and number literals
    is_async: bool = False  # an async function (Dart async/async*, JS async, Python async def)
    awaits: bool = False
    streams: bool = False  # produces or consumes a stream (async*, Stream, listen, await for)
    fields: list[str] = field(default_factory=list)  # a class's instance fields
    # Flutter: "stateless widget" | "stateful widget" | "inherited widget" | "widget"
    # | "widget state" | "change notifier"; None for everything else.
    widget: str | None = None
    state_of: str | None = None  # the widget a State class belongs to
    state: list[str] = field(default_factory=list)  # mutable state the class keeps
    builds: list[str] = field(default_factory=list)  # widgets its build method constructs
    # Occurrences of each identifier outside strings and comments; empty when the
    # analyser did not count (entities() then counts from the text).
    identifier_counts: dict[str, int] = field(default_factory=dict)
