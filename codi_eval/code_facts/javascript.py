"""JavaScript facts from the tree-sitter-javascript grammar (ES2023 and JSX).

Functions are ``function`` declarations, functions and arrows bound to a name
(``const f = (x) => ...``, ``exports.f = function ...``, ``Foo.prototype.f = ...``), and
class methods. A method cut out of its class does not parse as a program on its own, so
it is parsed again inside a synthetic class, as the Dart analyser does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from tree_sitter import Node

from codi_eval.code_facts import treesitter as ts
from codi_eval.code_facts.facts import CodeFacts, Declaration

__all__ = ["analyze_javascript", "outline", "parse_source"]

_FUNCTION_VALUES = frozenset(
    {"function_expression", "function", "arrow_function", "generator_function"}
)
_FUNCTION_NODES = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "function_expression",
        "function",
        "generator_function",
        "arrow_function",
        "method_definition",
    }
)
_IDENTIFIER_TYPES = frozenset(
    {
        "identifier",
        "property_identifier",
        "shorthand_property_identifier",
        "shorthand_property_identifier_pattern",
        "private_property_identifier",
    }
)
_WRAPPER = b"class __CodiSnippet__ {\n"


def parse_source(source: bytes, *, bounded: bool = True) -> ts.Tree | None:
    """The tree-sitter-javascript tree of ``source`` (None without the grammar or when too big)."""
    return ts.parse(source, "javascript", bounded=bounded)


# --------------------------------------------------------------------------- declarations


@dataclass
class _Decl:
    kind: str
    name: str
    qualname: str
    node: Node  # the whole statement, from its first token to its last
    function: Node | None  # the function node, None for classes
    doc: Node | None
    members: list[_Decl] = field(default_factory=list)


def _jsdoc_before(node: Node) -> Node | None:
    previous = node.prev_sibling
    if previous is not None and previous.type == "comment" and ts.text(previous).startswith("/**"):
        # Only a comment that ends on the line before the declaration (or on the same line).
        if node.start_point[0] - previous.end_point[0] <= 1:
            return previous
    return None


def _member_path(node: Node) -> str | None:
    """``Foo.prototype.bar`` for a member expression of plain names, else None."""
    if node.type in ("identifier", "this", "property_identifier"):
        return ts.text(node)
    if node.type == "member_expression":
        obj = node.child_by_field_name("object")
        prop = node.child_by_field_name("property")
        base = _member_path(obj) if obj is not None else None
        if base is None or prop is None:
            return None
        return f"{base}.{ts.text(prop)}"
    return None


def _method_kind(node: Node) -> str:
    name = node.child_by_field_name("name")
    if name is not None and ts.text(name) == "constructor":
        return "constructor"
    for child in node.children:
        if child.type == "get":
            return "getter"
        if child.type == "set":
            return "setter"
        if child.is_named:
            break
    return "method"


def _class_members(body: Node, prefix: str) -> list[_Decl]:
    found: list[_Decl] = []
    for child in body.named_children:
        if child.type == "method_definition":
            name = ts.text(child.child_by_field_name("name"))
            found.append(
                _Decl(_method_kind(child), name, prefix + name, child, child, _jsdoc_before(child))
            )
        elif child.type == "field_definition":
            prop = child.child_by_field_name("property")
            value = child.child_by_field_name("value")
            if prop is not None and value is not None and value.type in _FUNCTION_VALUES:
                name = ts.text(prop)
                found.append(
                    _Decl("method", name, prefix + name, child, value, _jsdoc_before(child))
                )
    return found


def _statement_decls(statement: Node, doc_anchor: Node) -> list[_Decl]:
    kind = statement.type
    doc = _jsdoc_before(doc_anchor)
    if kind == "export_statement":
        inner = statement.child_by_field_name("declaration")
        if inner is None:
            inner = next((c for c in statement.named_children if c.type in _FUNCTION_VALUES), None)
            if inner is not None and inner.type in _FUNCTION_VALUES:
                name_node = inner.child_by_field_name("name")
                name = ts.text(name_node) if name_node is not None else "default"
                return [_Decl("function", name, name, statement, inner, doc)]
            return []
        found = _statement_decls(inner, doc_anchor)
        for decl in found:
            decl.node = statement  # `export` is part of the declaration's code
        return found
    if kind in ("function_declaration", "generator_function_declaration"):
        name = ts.text(statement.child_by_field_name("name"))
        return [_Decl("function", name, name, statement, statement, doc)]
    if kind == "class_declaration":
        name = ts.text(statement.child_by_field_name("name"))
        decl = _Decl("class", name, name, statement, None, doc)
        body = statement.child_by_field_name("body")
        if body is not None:
            decl.members = _class_members(body, f"{name}.")
        return [decl]
    if kind in ("lexical_declaration", "variable_declaration"):
        found = []
        for declarator in statement.named_children:
            if declarator.type != "variable_declarator":
                continue
            name_node = declarator.child_by_field_name("name")
            value = declarator.child_by_field_name("value")
            if name_node is None or value is None or name_node.type != "identifier":
                continue
            name = ts.text(name_node)
            if value.type in _FUNCTION_VALUES:
                found.append(_Decl("function", name, name, statement, value, doc))
            elif value.type == "class":
                decl = _Decl("class", name, name, statement, None, doc)
                body = value.child_by_field_name("body")
                if body is not None:
                    decl.members = _class_members(body, f"{name}.")
                found.append(decl)
        return found
    if kind == "expression_statement":
        expr = statement.named_children[0] if statement.named_child_count else None
        if expr is not None and expr.type == "assignment_expression":
            left = expr.child_by_field_name("left")
            right = expr.child_by_field_name("right")
            path = _member_path(left) if left is not None else None
            if path and right is not None and right.type in _FUNCTION_VALUES:
                for lead in ("module.exports.", "exports."):
                    path = path.removeprefix(lead)
                name = path.split(".")[-1]
                return [_Decl("function", name, path, statement, right, doc)]
    return []


def _tree(source: bytes, *, snippet: bool = True) -> tuple[Node, list[_Decl], int] | None:
    tree = parse_source(source, bounded=snippet)
    if tree is None:
        return None
    root = tree.root_node
    if root.has_error and snippet:
        wrapped = parse_source(_WRAPPER + source + b"\n}")
        if wrapped is not None and not wrapped.root_node.has_error:
            cls = wrapped.root_node.named_children[0]
            body = cls.child_by_field_name("body")
            if body is not None:
                return wrapped.root_node, _class_members(body, ""), len(_WRAPPER)
    decls: list[_Decl] = []
    for statement in root.named_children:
        decls += _statement_decls(statement, statement)
    return root, decls, 0


def _flatten(decls: list[_Decl]) -> list[_Decl]:
    out: list[_Decl] = []
    for decl in decls:
        out.append(decl)
        out += _flatten(decl.members)
    return out


def _declaration(decl: _Decl, shift: int) -> Declaration:
    line_shift = 1 if shift else 0
    return Declaration(
        kind=decl.kind,
        name=decl.name,
        qualname=decl.qualname,
        line=decl.node.start_point[0] + 1 - line_shift,
        end_line=decl.node.end_point[0] + 1 - line_shift,
        start_byte=max(decl.node.start_byte - shift, 0),
        end_byte=max(decl.node.end_byte - shift, 0),
        doc=ts.text(decl.doc) if decl.doc is not None else None,
        doc_line=decl.doc.start_point[0] + 1 - line_shift if decl.doc is not None else None,
        has_error=decl.node.has_error,
    )


def outline(source: bytes) -> ts.Outline | None:
    """Every function, method and class in a JavaScript file, with its JSDoc comment.

    The whole file is parsed, however large; None only without the grammar.
    """
    parsed = _tree(source, snippet=False)
    if parsed is None:
        return None
    root, decls, _ = parsed
    doc_comments = [
        (n.start_byte, n.end_byte)
        for n in ts.walk(root)
        if n.type == "comment" and ts.text(n).startswith("/**")
    ]
    return ts.Outline(root, [_declaration(d, 0) for d in _flatten(decls)], doc_comments)


# --------------------------------------------------------------------------- facts


def _add(seq: list[str], item: str | None) -> None:
    if item and item not in seq:
        seq.append(item)


def _callee(node: Node) -> tuple[str | None, str | None]:
    """(dotted name, the exact path as written or None) of a call's function expression.

    ``a().b()`` gives ("b", None): the name of the method, but not a path a self-call
    could have, since ``b`` is called on whatever ``a()`` returned.
    """
    if node.type == "identifier":
        return ts.text(node), ts.text(node)
    if node.type == "member_expression":
        path = _member_path(node)
        if path is not None:
            return path, path
        prop = node.child_by_field_name("property")
        return (ts.text(prop) if prop is not None else None), None
    return None, None


@dataclass
class _Scan:
    self_calls: frozenset[str]  # callee paths that call the analysed function itself
    # (where the callee ends, its name): calls are listed in the order their names end,
    # as the Python analyser does, so `a().b()` lists a before b.
    call_sites: list[tuple[int, str]] = field(default_factory=list)
    returns: bool = False
    yields: bool = False
    awaits: bool = False
    recursive: bool = False
    loops: list[str] = field(default_factory=list)
    raises: list[str] = field(default_factory=list)
    handles_errors: bool = False
    literals: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


def _scan(roots: Iterable[Node], self_calls: frozenset[str], own: Node | None) -> _Scan:
    scan = _Scan(self_calls)
    stack: list[tuple[Node, int]] = [(n, 0) for n in reversed(list(roots))]
    while stack:
        node, nested = stack.pop()
        kind = node.type
        if kind == "comment":
            continue
        if kind in _IDENTIFIER_TYPES:
            name = ts.text(node)
            scan.counts[name] += 1
            _add(scan.identifiers, name)
        elif kind == "call_expression":
            function = node.child_by_field_name("function")
            if function is not None:
                callee, path = _callee(function)
                if callee:
                    scan.call_sites.append((function.end_byte, callee))
                if path is not None and path in self_calls:
                    scan.recursive = True
        elif kind == "new_expression":
            constructor = node.child_by_field_name("constructor")
            path = _member_path(constructor) if constructor is not None else None
            if constructor is not None and path:
                scan.call_sites.append((constructor.end_byte, path))
        elif kind == "return_statement" and nested == 0 and node.named_child_count:
            scan.returns = True
        elif kind == "yield_expression" and nested == 0:
            scan.yields = True
        elif kind == "await_expression":
            scan.awaits = True
        elif kind == "for_in_statement":
            is_await = any(c.type == "await" for c in node.children)
            _add(scan.loops, "for await" if is_await else "for")
            scan.awaits = scan.awaits or is_await
        elif kind == "for_statement":
            _add(scan.loops, "for")
        elif kind == "while_statement":
            _add(scan.loops, "while")
        elif kind == "do_statement":
            _add(scan.loops, "do-while")
        elif kind == "throw_statement":
            thrown = node.named_children[0] if node.named_child_count else None
            if thrown is not None:
                if thrown.type == "new_expression":
                    ctor = thrown.child_by_field_name("constructor")
                    _add(scan.raises, _member_path(ctor) if ctor is not None else None)
                elif thrown.type in ("identifier", "member_expression"):
                    _add(scan.raises, _member_path(thrown))
                elif thrown.type == "call_expression":
                    fn = thrown.child_by_field_name("function")
                    _add(scan.raises, _callee(fn)[0] if fn is not None else None)
        elif kind == "catch_clause":
            scan.handles_errors = True
        elif kind == "string_fragment":
            value = ts.text(node)
            if len(value) <= 40 and "\n" not in value:
                _add(scan.literals, value)
        elif kind == "number":
            _add(scan.literals, ts.text(node))
        if node.child_count:
            inner = nested + (1 if kind in _FUNCTION_NODES and node != own else 0)
            stack.extend((c, inner) for c in reversed(node.children))
    return scan


def _calls(scan: _Scan) -> list[str]:
    calls: list[str] = []
    for _, name in sorted(scan.call_sites):
        _add(calls, name)
    return calls


def _params(function: Node | None) -> list[str]:
    if function is None:
        return []
    single = function.child_by_field_name("parameter")
    if single is not None:
        return [ts.text(single)]
    params = function.child_by_field_name("parameters")
    if params is None:
        return []
    names: list[str] = []
    for param in params.named_children:
        target = param
        if param.type == "assignment_pattern":
            target = param.child_by_field_name("left") or param
        if target.type == "rest_pattern":
            target = target.named_children[0] if target.named_child_count else target
        if target.type == "identifier":
            _add(names, ts.text(target))
        else:  # destructured: { a, b = 1 } or [x, y]
            for inner in ts.walk(target):
                if inner.type in ("shorthand_property_identifier_pattern", "identifier"):
                    _add(names, ts.text(inner))
    return names


def _keywords(function: Node | None) -> set[str]:
    if function is None:
        return set()
    return {c.type for c in function.children if not c.is_named}


def analyze_javascript(code: str) -> CodeFacts | None:
    """Facts about JavaScript ``code``; None when tree-sitter cannot be used."""
    source = code.encode("utf-8", "replace")
    parsed = _tree(source)
    if parsed is None:
        return None
    root, top, shift = parsed
    decls = [_declaration(d, shift) for d in _flatten(top)]
    target = top[0] if len(top) == 1 else None
    name: str | None = None
    kind = "module"
    params: list[str] = []
    bases: list[str] = []
    is_async = generator = arrow_value = False
    if target is None:
        scan = _scan(root.named_children, frozenset(), None)
    elif target.function is not None:
        function = target.function
        name, kind, params = target.name, target.kind, _params(function)
        if kind == "function" and shift:
            kind = "method"
        # A method calls itself through `this`; a function by its name (or, for a named
        # function expression, by that name); `Foo.prototype.f = function` through either.
        self_calls = {f"this.{name}"}
        if kind != "method" and kind != "getter" and kind != "setter":
            self_calls.add(target.qualname)
            if "." not in target.qualname:
                self_calls.add(name)
            own_name = function.child_by_field_name("name")
            if own_name is not None:
                self_calls.add(ts.text(own_name))
        scan = _scan([target.node], frozenset(self_calls), function)
        keywords = _keywords(function)
        is_async = "async" in keywords
        generator = "*" in keywords or function.type.startswith("generator")
        body = function.child_by_field_name("body")
        arrow_value = function.type == "arrow_function" and (
            body is not None and body.type != "statement_block"
        )
    else:
        scan = _scan([target.node], frozenset(), None)
        name, kind = target.name, "class"
        cls = target.node
        if cls.type == "export_statement":  # `export class Tree extends Node {...}`
            cls = cls.child_by_field_name("declaration") or cls
        heritage = next((c for c in cls.named_children if c.type == "class_heritage"), None)
        if heritage is not None:
            for part in heritage.named_children:
                _add(bases, _member_path(part) or ts.text(part))
    function_like = kind not in ("module", "class")
    return CodeFacts(
        language="javascript",
        name=name,
        kind=kind,
        params=params,
        calls=_calls(scan),
        returns=function_like and kind != "constructor" and (scan.returns or arrow_value),
        yields=function_like and scan.yields,
        loops=scan.loops,
        recursive=function_like and scan.recursive,
        raises=scan.raises,
        identifiers=scan.identifiers,
        parse_ok=not root.has_error,
        declarations=decls,
        bases=bases,
        handles_errors=scan.handles_errors,
        literals=scan.literals[:20],
        is_async=is_async,
        awaits=scan.awaits,
        streams=is_async and generator,
        fields=[m.name for m in (target.members if target else []) if m.kind == "field"],
        identifier_counts=dict(scan.counts),
    )
