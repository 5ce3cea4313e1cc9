"""Python facts from :mod:`ast` (the code is parsed, never run)."""

from __future__ import annotations

import ast
import io
import keyword
import textwrap
import tokenize

from codi_eval.code_facts.facts import CodeFacts, Declaration

_PY_KEYWORDS = frozenset(keyword.kwlist)


def _dotted(node: ast.AST) -> str | None:
    """``os.path.join`` for an Attribute chain; the attribute alone when the base is a call."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif not parts:
        return None
    return ".".join(reversed(parts))


def _add(seq: list[str], item: str | None) -> None:
    if item and item not in seq:
        seq.append(item)


def _calls_itself(func: ast.expr, name: str) -> bool:
    """``name(...)``, ``self.name(...)`` or ``cls.name(...)``; not ``super().name(...)``
    or ``other.name(...)``, which call a different function of the same name."""
    if isinstance(func, ast.Name):
        return func.id == name
    return (
        isinstance(func, ast.Attribute)
        and func.attr == name
        and isinstance(func.value, ast.Name)
        and func.value.id in ("self", "cls")
    )


class _Collector(ast.NodeVisitor):
    def __init__(self, target: ast.AST, name: str | None) -> None:
        self.target = target
        self.name = name
        self.calls: list[tuple[int, int, str]] = []
        self.raises: list[str] = []
        self.catches: list[str] = []
        self.handles_errors = False
        self.loops: list[str] = []
        self.literals: list[str] = []
        self.returns = False
        self.yields = False
        self.awaits = False
        self.recursive = False
        self._function_depth = 0

    def _own_scope(self) -> bool:
        # A return inside a nested def or lambda is not the analysed function's return.
        return self._function_depth <= 1

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._function_depth += 1
        self.generic_visit(node)
        self._function_depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function_depth += 2
        self.generic_visit(node)
        self._function_depth -= 2

    def visit_Call(self, node: ast.Call) -> None:
        dotted = _dotted(node.func)
        if dotted:
            end = (
                getattr(node.func, "end_lineno", 0) or 0,
                getattr(node.func, "end_col_offset", 0) or 0,
            )
            self.calls.append((end[0], end[1], dotted))
        if self.name and _calls_itself(node.func, self.name):
            self.recursive = True
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        if (
            self._own_scope()
            and node.value is not None
            and not (isinstance(node.value, ast.Constant) and node.value.value is None)
        ):
            self.returns = True
        self.generic_visit(node)

    def visit_Yield(self, node: ast.Yield | ast.YieldFrom) -> None:
        if self._own_scope():
            self.yields = True
        self.generic_visit(node)

    visit_YieldFrom = visit_Yield

    def visit_Await(self, node: ast.Await) -> None:
        self.awaits = True
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        exc = node.exc
        if isinstance(exc, ast.Call):
            exc = exc.func
        if exc is not None:
            _add(self.raises, _dotted(exc))
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self.handles_errors = True
        types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
        for exc in types:
            if exc is not None:
                _add(self.catches, _dotted(exc))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, str) and 0 < len(value) <= 40 and "\n" not in value:
            _add(self.literals, value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            _add(self.literals, repr(value))

    def _loop(self, kind: str, node: ast.AST) -> None:
        _add(self.loops, kind)
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        self._loop("for", node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        self.awaits = True
        self._loop("async for", node)

    def visit_While(self, node: ast.While) -> None:
        self._loop("while", node)

    def visit_ListComp(self, node: ast.AST) -> None:
        self._loop("comprehension", node)

    visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_ListComp


def _python_identifiers(source: str) -> list[str]:
    seen: dict[str, None] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.NAME and tok.string not in _PY_KEYWORDS:
                seen.setdefault(tok.string, None)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return list(seen)


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = fn.args
    names = [x.arg for x in (*a.posonlyargs, *a.args)]
    if a.vararg:
        names.append(a.vararg.arg)
    names += [x.arg for x in a.kwonlyargs]
    if a.kwarg:
        names.append(a.kwarg.arg)
    return names


def _declarations(body: list[ast.stmt], prefix: str, in_class: bool) -> list[Declaration]:
    found: list[Declaration] = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if isinstance(node, ast.ClassDef):
                kind = "class"
            elif in_class:
                kind = "constructor" if node.name == "__init__" else "method"
            else:
                kind = "function"
            found.append(
                Declaration(
                    kind=kind,
                    name=node.name,
                    qualname=prefix + node.name,
                    line=node.lineno,
                    end_line=node.end_lineno or node.lineno,
                    doc=ast.get_docstring(node, clean=False),
                )
            )
            if isinstance(node, ast.ClassDef):
                found += _declarations(node.body, f"{prefix}{node.name}.", True)
    return found


def analyze_python(code: str) -> CodeFacts:
    """Facts from Python's own parser; raises ``SyntaxError``/``ValueError`` when it fails."""
    # inspect.getsource on a method returns indented code; dedent so ast accepts it.
    source = textwrap.dedent(code)
    tree = ast.parse(source)
    defs = [
        n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    target: ast.AST = tree
    name: str | None = None
    kind = "module"
    params: list[str] = []
    bases: list[str] = []
    if len(defs) == 1:
        target = defs[0]
        name = defs[0].name
        if isinstance(target, ast.ClassDef):
            kind = "class"
            for base in target.bases:
                _add(bases, _dotted(base))
        else:
            params = _params(target)
            kind = "function"
            if params and params[0] in ("self", "cls"):
                kind = "method"
                params = params[1:]
    collector = _Collector(target, name if kind in ("function", "method") else None)
    collector.visit(target)
    calls: list[str] = []
    for _, _, dotted in sorted(collector.calls, key=lambda c: (c[0], c[1])):
        _add(calls, dotted)
    is_function = kind in ("function", "method")
    return CodeFacts(
        language="python",
        name=name,
        kind=kind,
        params=params,
        calls=calls,
        returns=collector.returns if is_function else False,
        yields=collector.yields if is_function else False,
        loops=collector.loops,
        recursive=collector.recursive,
        raises=collector.raises,
        identifiers=_python_identifiers(source),
        parse_ok=True,
        declarations=_declarations(tree.body, "", False),
        bases=bases,
        catches=collector.catches,
        handles_errors=collector.handles_errors,
        literals=collector.literals[:20],
        is_async=isinstance(target, ast.AsyncFunctionDef),
        awaits=collector.awaits,
    )
