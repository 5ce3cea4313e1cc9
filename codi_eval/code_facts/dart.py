"""Dart (and Flutter) facts from the tree-sitter-dart grammar.

The grammar keeps Dart's declarations flat: a function or method is a ``*_signature``
node followed by a sibling ``function_body``, a call is a primary expression followed by
sibling ``selector`` nodes (``.name``, ``?.name``, ``(arguments)``), and doc comments and
annotations are siblings before the declaration. This module turns that into
:class:`~codi_eval.code_facts.facts.CodeFacts` and, for the dataset builder, into
:class:`~codi_eval.code_facts.facts.Declaration` records with their doc comments.

A snippet that is a class member on its own (``static`` methods, constructors) does not
parse as a Dart file; it is parsed again inside a synthetic class, so a method cut out of
its class gets the same facts it has in place.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tree_sitter import Node

from codi_eval.code_facts import treesitter as ts
from codi_eval.code_facts.facts import CodeFacts, Declaration

__all__ = ["analyze_dart", "outline", "parse_source"]

_TYPE_DECLS = {
    "class_definition": "class",
    "mixin_declaration": "mixin",
    "extension_declaration": "extension",
    "extension_type_declaration": "extension type",
    "enum_declaration": "enum",
}
_BODIES = ("class_body", "extension_body", "enum_body")
_SIGNATURE_KINDS = {
    "function_signature": "function",
    "getter_signature": "getter",
    "setter_signature": "setter",
    "operator_signature": "operator",
    "constructor_signature": "constructor",
    "constant_constructor_signature": "constructor",
    "factory_constructor_signature": "constructor",
    "redirecting_factory_constructor_signature": "constructor",
}
_TOP_LEVEL_STARTS = ("function_signature", "getter_signature", "setter_signature")
_VARIABLE_LISTS = ("static_final_declaration_list", "initialized_identifier_list")
# Nodes that end whatever the doc comments before them were documenting.
_DIRECTIVES = frozenset(
    {"library_name", "import_or_export", "part_directive", "part_of_directive", "enum_constant"}
)
_IDENTIFIER_TYPES = frozenset({"identifier", "type_identifier", "identifier_dollar_escaped"})
_NESTED_FUNCTIONS = frozenset({"function_expression", "lambda_expression"})
_FUNCTION_KINDS = frozenset({"function", "method", "getter", "setter", "operator"})
_TYPE_KINDS = frozenset(_TYPE_DECLS.values())
_WRAPPER = b"class __CodiSnippet__ {\n"

# Flutter value types: constructed in build methods but not widgets it builds.
_NOT_WIDGETS = frozenset(
    """
    EdgeInsets EdgeInsetsDirectional TextStyle BoxDecoration ShapeDecoration BorderRadius
    Radius Border BorderSide BoxShadow BoxConstraints Color Colors Size Offset Rect Duration
    Alignment AlignmentDirectional FractionalOffset RoundedRectangleBorder CircleBorder
    StadiumBorder LinearGradient RadialGradient Key ValueKey GlobalKey UniqueKey ObjectKey
    PageStorageKey DateTime Uri Future Stream StreamController Completer Timer List Map Set
    TextEditingController ScrollController AnimationController Tween CurvedAnimation
    ThemeData ColorScheme TextTheme IconThemeData ButtonStyle InputDecoration
    MaterialPageRoute CupertinoPageRoute PageRouteBuilder Matrix4 Paint Path
    ImageFilter BoxFit FontWeight TextAlign MainAxisAlignment CrossAxisAlignment
    WidgetStatePropertyAll MaterialStatePropertyAll SliverGridDelegateWithFixedCrossAxisCount
    """.split()
)
_EXCEPTION_NAME = re.compile(r"(?:Error|Exception)$")


def parse_source(source: bytes, *, bounded: bool = True) -> ts.Tree | None:
    """The tree-sitter-dart tree of ``source`` (None without the grammar or when too big)."""
    return ts.parse(source, "dart", bounded=bounded)


# --------------------------------------------------------------------------- declarations


@dataclass
class _Decl:
    kind: str
    name: str
    qualname: str
    nodes: list[Node]  # the declaration's own sibling nodes: signature [+ body], or type
    prefix: list[Node]  # annotations, comments and modifiers between the doc and the nodes
    docs: list[Node]
    members: list[_Decl] = field(default_factory=list)

    @property
    def start_byte(self) -> int:
        return min(n.start_byte for n in [*self.prefix, *self.nodes])

    @property
    def end_byte(self) -> int:
        return self.nodes[-1].end_byte

    @property
    def annotations(self) -> tuple[str, ...]:
        return tuple(
            ts.text(n).lstrip("@").split("(")[0] for n in self.prefix if n.type == "annotation"
        )


def _name_of(node: Node) -> str:
    named = node.child_by_field_name("name")
    return ts.text(named) if named is not None else ""


def _signature_name(signature: Node) -> str:
    """``build``, ``Counter.named`` for a named constructor, ``operator+`` for operators."""
    kind = signature.type
    if kind == "operator_signature":
        for child in signature.named_children:
            if child.type in ("binary_operator", "tilde_operator") or child.type.endswith(
                "_operator"
            ):
                return "operator" + ts.text(child)
        operator = re.search(r"operator\s*([^\s(]+)", ts.text(signature))
        return "operator" + (operator.group(1) if operator else "")
    if kind in ("function_signature", "getter_signature", "setter_signature"):
        return _name_of(signature)
    parts: list[str] = []
    for child in signature.children:
        if child.type == "formal_parameter_list" or child.type == "=":
            break
        if child.type == "identifier":
            parts.append(ts.text(child))
    return ".".join(parts)


def _signature_of(node: Node) -> Node | None:
    """The ``*_signature`` node inside a ``method_signature`` or ``declaration``."""
    if node.type in _SIGNATURE_KINDS:
        return node
    for child in node.named_children:
        if child.type in _SIGNATURE_KINDS:
            return child
    return None


def _type_name(node: Node) -> str:
    name = _name_of(node)
    if name:
        return name
    if node.type == "class_definition":  # `class Z = B with M;`
        for child in node.named_children:
            if child.type == "mixin_application_class":
                for inner in child.named_children:
                    if inner.type == "identifier":
                        return ts.text(inner)
    for child in node.named_children:
        if child.type == "identifier":
            return ts.text(child)
    if node.type == "extension_declaration":  # an unnamed extension
        on = node.child_by_field_name("class")
        return f"extension<{ts.text(on)}>" if on is not None else "extension"
    return ""


def _body_of(node: Node) -> Node | None:
    body = node.child_by_field_name("body")
    if body is not None:
        return body
    for child in node.named_children:
        if child.type in _BODIES:
            return child
    return None


def _collect(children: list[Node], prefix: str, in_type: bool) -> list[_Decl]:
    """The declarations among one container's children (a program or a type's body)."""
    found: list[_Decl] = []
    docs: list[Node] = []
    before: list[Node] = []
    count = len(children)
    i = 0

    def emit(kind: str, name: str, nodes: list[Node], qualname: str | None = None) -> _Decl:
        nonlocal docs, before
        decl = _Decl(kind, name, qualname or prefix + name, nodes, before, docs)
        found.append(decl)
        docs, before = [], []
        return decl

    while i < count:
        child = children[i]
        kind = child.type
        if kind == "documentation_comment":
            docs.append(child)
            before = [n for n in before if n.type == "annotation"]
        elif kind in ("comment", "annotation"):
            before.append(child)
        elif kind in _TYPE_DECLS:
            name = _type_name(child)
            decl = emit(_TYPE_DECLS[kind], name, [child])
            body = _body_of(child)
            if body is not None:
                decl.members = _collect(body.children, f"{decl.qualname}.", True)
        elif kind == "method_signature" or (not in_type and kind in _TOP_LEVEL_STARTS):
            nodes = [child]
            if i + 1 < count and children[i + 1].type == "function_body":
                i += 1
                nodes.append(children[i])
            signature = _signature_of(child)
            sig_kind = _SIGNATURE_KINDS.get(signature.type, "method") if signature else "method"
            if in_type and sig_kind == "function":
                sig_kind = "method"
            name = _signature_name(signature) if signature else ""
            emit(sig_kind, name, nodes, _member_qualname(sig_kind, name, prefix))
        elif kind == "declaration":
            signature = _signature_of(child)
            if signature is not None:
                sig_kind = _SIGNATURE_KINDS[signature.type]
                sig_kind = "method" if sig_kind == "function" else sig_kind
                name = _signature_name(signature)
                emit(sig_kind, name, [child], _member_qualname(sig_kind, name, prefix))
            else:
                for name in _variable_names(child):
                    emit("field", name, [child])
                docs, before = [], []
        elif kind in _VARIABLE_LISTS and not in_type:
            for name in _variable_names(child):
                emit("variable", name, [child])
            docs, before = [], []
        elif kind == "type_alias":
            name = next(
                (ts.text(c) for c in child.named_children if c.type in _IDENTIFIER_TYPES), ""
            )
            emit("typedef", name, [child])
        elif kind in _DIRECTIVES or kind == "ERROR":
            docs, before = [], []
        elif kind in (";", "{", "}", ","):
            if kind == ";" and found and found[-1].nodes[-1].end_byte <= child.start_byte:
                last = found[-1]
                if not docs and not before and last.nodes[-1].next_sibling == child:
                    last.nodes.append(child)  # `abstract void go();` ends at its semicolon
        else:
            before.append(child)  # modifiers and types of what follows: external, final, int
        i += 1
    return found


def _member_qualname(kind: str, name: str, prefix: str) -> str:
    """A constructor's name already holds its class: ``A.named``; the unnamed one is ``A.new``."""
    if kind != "constructor" or not prefix:
        return prefix + name
    return name if "." in name else f"{name}.new"


def _variable_names(node: Node) -> list[str]:
    names: list[str] = []
    lists = [node] if node.type in _VARIABLE_LISTS else node.named_children
    for inner in lists:
        if inner.type not in _VARIABLE_LISTS:
            continue
        for item in inner.named_children:
            for part in item.named_children:
                if part.type == "identifier":
                    names.append(ts.text(part))
                    break
    return names


def _flatten(decls: list[_Decl]) -> list[_Decl]:
    out: list[_Decl] = []
    for decl in decls:
        out.append(decl)
        out += _flatten(decl.members)
    return out


def _tree(source: bytes, *, snippet: bool = True) -> tuple[Node, list[_Decl], int] | None:
    """(root, top-level declarations, bytes of wrapper before the code) for ``source``."""
    tree = parse_source(source, bounded=snippet)
    if tree is None:
        return None
    root = tree.root_node
    if root.has_error and snippet:
        wrapped = parse_source(_WRAPPER + source + b"\n}")
        if wrapped is not None and not wrapped.root_node.has_error:
            cls = wrapped.root_node.named_children[0]
            body = _body_of(cls)
            if body is not None:
                return wrapped.root_node, _collect(body.children, "", True), len(_WRAPPER)
    return root, _collect(root.children, "", False), 0


def _declaration(decl: _Decl, shift: int) -> Declaration:
    first = min([*decl.prefix, *decl.nodes], key=lambda n: n.start_byte)
    doc = "\n".join(ts.text(n) for n in decl.docs) or None
    line_shift = 1 if shift else 0
    return Declaration(
        kind=decl.kind,
        name=decl.name,
        qualname=decl.qualname,
        line=decl.nodes[0].start_point[0] + 1 - line_shift,
        end_line=decl.nodes[-1].end_point[0] + 1 - line_shift,
        start_byte=max(first.start_byte - shift, 0),
        end_byte=max(decl.end_byte - shift, 0),
        doc=doc,
        doc_line=decl.docs[0].start_point[0] + 1 - line_shift if decl.docs else None,
        annotations=decl.annotations,
        has_error=any(n.has_error for n in decl.nodes),
    )


def outline(source: bytes) -> ts.Outline | None:
    """Every declaration in a Dart file with its doc comment, outermost first.

    The whole file is parsed, however large; None only without the grammar.
    """
    parsed = _tree(source, snippet=False)
    if parsed is None:
        return None
    root, decls, _ = parsed
    doc_comments = [
        (n.start_byte, n.end_byte)
        for n in ts.walk(root)
        if n.type == "documentation_comment"
        or (n.type == "comment" and ts.text(n).startswith(("///", "/**")))
    ]
    return ts.Outline(root, [_declaration(d, 0) for d in _flatten(decls)], doc_comments)


# --------------------------------------------------------------------------- facts


def _add(seq: list[str], item: str | None) -> None:
    if item and item not in seq:
        seq.append(item)


@dataclass
class _Call:
    name: str
    own: bool  # unqualified or this.name: may call the function being analysed


@dataclass
class _Scan:
    """Everything one walk over a declaration's nodes finds."""

    target: str | None = None  # the function whose self-calls count as recursion
    calls: list[_Call] = field(default_factory=list)
    returns: bool = False
    yields: bool = False
    awaits: bool = False
    recursive: bool = False
    loops: list[str] = field(default_factory=list)
    raises: list[str] = field(default_factory=list)
    catches: list[str] = field(default_factory=list)
    handles_errors: bool = False
    literals: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    set_state: list[str] = field(default_factory=list)  # names assigned inside setState


_ASSIGNABLE = ("unconditional_assignable_selector", "conditional_assignable_selector")
_SELECTORS = frozenset({"selector", *_ASSIGNABLE})


def _selector_part(selector: Node) -> tuple[str, str | None]:
    """("call", None) for ``(args)``; ("member", name) for ``.name``/``?.name``; else ("other", None)."""
    if selector.type in _ASSIGNABLE:  # `super.name` has its selector unwrapped
        for part in selector.named_children:
            if part.type == "identifier":
                return "member", ts.text(part)
        return "other", None
    for inner in selector.named_children:
        if inner.type == "argument_part":
            return "call", None
        if inner.type in _ASSIGNABLE:
            for part in inner.named_children:
                if part.type == "identifier":
                    return "member", ts.text(part)
            return "other", None
    return ("null", None) if ts.text(selector) == "!" else ("other", None)


def _chains(children: list[Node], scan: _Scan) -> None:
    """Calls written as ``a.b.c(...)``: a primary followed by selector siblings."""
    count = len(children)
    j = 0
    while j < count:
        head = children[j]
        if head.type not in ("identifier", "this", "super") or j + 1 >= count:
            j += 1
            continue
        if children[j + 1].type not in _SELECTORS:
            j += 1
            continue
        parts = [ts.text(head)]
        own = True
        k = j + 1
        while k < count and children[k].type in _SELECTORS:
            what, name = _selector_part(children[k])
            if what == "member" and name:
                parts.append(name)
            elif what == "call":
                if parts:
                    dotted = ".".join(parts)
                    self_call = own and (
                        len(parts) == 1 or (len(parts) == 2 and parts[0] == "this")
                    )
                    scan.calls.append(_Call(dotted, self_call))
                parts, own = [], False  # what follows applies to the call's result
            elif what == "other":
                parts, own = [], False
            k += 1
        j = k


def _constructor_call(node: Node) -> str | None:
    """``Text`` for ``const Text('x')`` / ``new Text('x')``; ``Text.rich`` for named ones."""
    parts: list[str] = []
    for child in node.children:
        if child.type == "arguments":
            break
        if child.type in ("type_identifier", "identifier"):
            parts.append(ts.text(child))
    return ".".join(parts) or None


def _thrown(node: Node) -> str | None:
    for child in node.named_children:
        if child.type in ("identifier", "type_identifier"):
            return ts.text(child)
        if child.type in ("const_object_expression", "new_expression"):
            name = _constructor_call(child)
            return name.split(".")[0] if name else None
        return None
    return None


def _assigned_names(node: Node) -> list[str]:
    names: list[str] = []
    for current in ts.walk(node):
        if current.type == "assignable_expression":
            ident = current.named_children[0] if current.named_child_count else None
            if ident is not None and ident.type == "identifier":
                _add(names, ts.text(ident))
    return names


def _scan(roots: Iterable[Node], target: str | None) -> _Scan:
    scan = _Scan(target=target)
    shadowed = False  # a local function or variable of the target's name hides it
    stack: list[tuple[Node, int]] = [(n, 0) for n in reversed(list(roots))]
    while stack:
        node, nested = stack.pop()
        kind = node.type
        if kind in ("comment", "documentation_comment"):
            continue
        if kind in _IDENTIFIER_TYPES:
            name = ts.text(node)
            scan.counts[name] += 1
            _add(scan.identifiers, name)
            continue
        if kind == "return_statement" and nested == 0 and node.named_child_count:
            scan.returns = True
        elif kind in ("yield_statement", "yield_each_statement") and nested == 0:
            scan.yields = True
        elif kind == "await_expression":
            scan.awaits = True
        elif kind == "for_statement":
            is_await = any(c.type == "await" for c in node.children)
            _add(scan.loops, "await for" if is_await else "for")
            scan.awaits = scan.awaits or is_await
        elif kind == "for_element":
            _add(scan.loops, "collection for")
        elif kind == "while_statement":
            _add(scan.loops, "while")
        elif kind == "do_statement":
            _add(scan.loops, "do-while")
        elif kind == "throw_expression":
            _add(scan.raises, _thrown(node))
        elif kind == "try_statement":
            for child in node.children:
                if child.type == "type_identifier":
                    _add(scan.catches, ts.text(child))
                elif child.type == "catch_clause":
                    scan.handles_errors = True
            if scan.catches:
                scan.handles_errors = True
        elif kind in ("const_object_expression", "new_expression"):
            scan.calls.append(_Call(_constructor_call(node) or "", False))
        elif kind == "cascade_section":
            selector = next((c for c in node.named_children if c.type == "cascade_selector"), None)
            if selector is not None and any(c.type == "argument_part" for c in node.children):
                scan.calls.append(_Call(ts.text(selector), False))
        elif kind == "string_literal":
            raw = ts.text(node)
            body = raw.strip("'\"").removeprefix("r").strip("'\"")
            if body and len(body) <= 40 and "\n" not in body:
                _add(scan.literals, body)
        elif kind in (
            "decimal_integer_literal",
            "decimal_floating_point_literal",
            "hex_integer_literal",
        ):
            _add(scan.literals, ts.text(node))
        if node.child_count:
            children = node.children
            _chains(children, scan)
            if kind == "expression_statement" or kind == "argument":
                head = children[0] if children else None
                if head is not None and head.type == "identifier" and ts.text(head) == "setState":
                    for name in _assigned_names(node):
                        _add(scan.set_state, name)
            inner = nested + (1 if kind in _NESTED_FUNCTIONS else 0)
            if target is not None and kind in (
                "lambda_expression",
                "initialized_variable_definition",
            ):
                named = node.child_by_field_name(
                    "parameters" if kind == "lambda_expression" else "name"
                )
                if named is not None and kind == "lambda_expression":
                    named = named.child_by_field_name("name")
                shadowed = shadowed or (named is not None and ts.text(named) == target)
            stack.extend((c, inner) for c in reversed(children))
    scan.calls = [c for c in scan.calls if c.name]
    if target is not None:
        # `name(...)` calls the function itself unless a local declaration hides the name;
        # `this.name(...)` always does.
        scan.recursive = any(
            c.own and (c.name == f"this.{target}" or (c.name == target and not shadowed))
            for c in scan.calls
        )
    return scan


# --------------------------------------------------------------------------- the target


def _params(signature: Node | None) -> list[str]:
    if signature is None:
        return []
    plist = next((c for c in signature.named_children if c.type == "formal_parameter_list"), None)
    if plist is None:
        return []
    names: list[str] = []
    for param in ts.walk(plist):
        if param.type != "formal_parameter":
            continue
        named = param.child_by_field_name("name")
        if named is not None:
            _add(names, ts.text(named))
            continue
        for child in param.named_children:
            if child.type in ("constructor_param", "super_formal_parameter"):
                idents = [c for c in child.named_children if c.type == "identifier"]
                if idents:
                    _add(names, ts.text(idents[-1]))
                break
        else:
            idents = [c for c in param.named_children if c.type == "identifier"]
            if idents:
                _add(names, ts.text(idents[-1]))
    return names


def _returns_void(signature: Node | None) -> bool:
    if signature is None:
        return False
    for child in signature.named_children:
        if child.type == "void_type":
            return True
        if child.type == "type_identifier" and ts.text(child) == "Future":
            args = child.next_named_sibling
            if args is not None and args.type == "type_arguments":
                return ts.text(args).replace(" ", "") == "<void>"
        if child.type == "identifier":
            return False
    return False


def _return_type(signature: Node | None) -> str:
    if signature is None:
        return ""
    for child in signature.named_children:
        if child.type in ("type_identifier", "void_type"):
            return ts.text(child)
        if child.type == "identifier":
            return ""
    return ""


def _body_keywords(nodes: list[Node]) -> set[str]:
    for node in nodes:
        if node.type == "function_body":
            return {c.type for c in node.children if not c.is_named}
    return set()


@dataclass
class _TypeInfo:
    bases: list[str]
    superclass: str | None
    super_args: list[str]
    mixins: list[str]


def _type_info(node: Node) -> _TypeInfo:
    bases: list[str] = []
    superclass: str | None = None
    super_args: list[str] = []
    mixins: list[str] = []
    for child in node.named_children:
        if child.type == "superclass":
            for part in child.named_children:
                if part.type == "type_identifier" and superclass is None:
                    superclass = ts.text(part)
                    _add(bases, superclass)
                elif part.type == "type_arguments" and not super_args:
                    super_args = [
                        ts.text(a) for a in part.named_children if a.type == "type_identifier"
                    ]
                elif part.type == "mixins":
                    for m in part.named_children:
                        if m.type == "type_identifier":
                            _add(mixins, ts.text(m))
                            _add(bases, ts.text(m))
        elif child.type in ("interfaces", "mixins"):
            for part in child.named_children:
                if part.type == "type_identifier":
                    _add(bases, ts.text(part))
                    if child.type == "mixins":
                        _add(mixins, ts.text(part))
        elif child.type == "type_identifier" and node.type in (
            "mixin_declaration",
            "extension_declaration",
        ):
            _add(bases, ts.text(child))  # `mixin M on A`, `extension E on String`
    return _TypeInfo(bases, superclass, super_args, mixins)


def _widget_role(info: _TypeInfo) -> tuple[str | None, str | None]:
    sup = info.superclass
    if sup == "StatelessWidget":
        return "stateless widget", None
    if sup == "StatefulWidget":
        return "stateful widget", None
    if sup in ("InheritedWidget", "InheritedNotifier", "InheritedModel", "InheritedTheme"):
        return "inherited widget", None
    if sup == "State":
        return "widget state", info.super_args[0] if info.super_args else None
    if sup and sup.endswith("Widget"):
        return "widget", None
    if "ChangeNotifier" in (sup, *info.mixins) or sup == "ValueNotifier":
        return "change notifier", None
    return None, None


def _fields(decl: _Decl) -> tuple[list[str], list[str]]:
    """(instance fields, the mutable ones) declared in a type's body."""
    every: list[str] = []
    mutable: list[str] = []
    for member in decl.members:
        if member.kind != "field":
            continue
        node = member.nodes[0]
        tokens = {c.type for c in node.children}
        if "static" in tokens or "const_builtin" in tokens:
            continue
        _add(every, member.name)
        if "final_builtin" not in tokens:
            _add(mutable, member.name)
    return every, mutable


def _builds(scan: _Scan) -> list[str]:
    widgets: list[str] = []
    for call in scan.calls:
        head = call.name.split(".")[0]
        if (
            head[:1].isupper()
            and head not in _NOT_WIDGETS
            and not _EXCEPTION_NAME.search(head)
            and (call.name.count(".") == 0 or not call.name.split(".")[1][:1].islower())
        ):
            _add(widgets, call.name)
    return widgets


def _build_methods(decl: _Decl) -> list[_Decl]:
    return [m for m in decl.members if m.kind == "method" and m.name == "build"]


def _uses_receiver(scan: _Scan) -> bool:
    return any(name in ("this", "super", "widget", "setState") for name in scan.identifiers) or any(
        c.name.split(".")[0] in ("this", "super", "setState") for c in scan.calls
    )


def _is_candidate(decl: _Decl) -> bool:
    return decl.kind not in ("field", "variable", "typedef")


def _widget_pair(candidates: list[_Decl]) -> tuple[_Decl, _Decl] | None:
    """(the StatefulWidget, its State class) when the code is exactly those two classes."""
    if len(candidates) != 2 or any(d.kind != "class" for d in candidates):
        return None
    roles = [_widget_role(_type_info(d.nodes[0])) for d in candidates]
    for (widget, (role, _)), (state, state_role) in (
        ((candidates[0], roles[0]), (candidates[1], roles[1])),
        ((candidates[1], roles[1]), (candidates[0], roles[0])),
    ):
        if role == "stateful widget" and state_role == ("widget state", widget.name):
            return widget, state
    return None


def _function_facts(target: _Decl, wrapped: bool) -> tuple[_Scan, dict[str, Any]]:
    signature = _signature_of(target.nodes[0])
    is_function = target.kind in _FUNCTION_KINDS
    scan = _scan(target.nodes, target.name if is_function else None)
    kind = target.kind
    # A method cut out of its class parses as a top-level function; its receiver,
    # @override or the wrapper it needed say what it is.
    if kind == "function" and (wrapped or "override" in target.annotations or _uses_receiver(scan)):
        kind = "method"
    keywords = _body_keywords(target.nodes)
    void = _returns_void(signature)
    arrow_value = "=>" in keywords and kind not in ("setter", "constructor") and not void
    return scan, {
        "name": target.name,
        "kind": kind,
        "params": _params(signature),
        "returns": kind != "constructor" and (scan.returns or arrow_value),
        "yields": scan.yields,
        "recursive": scan.recursive,
        "is_async": bool(keywords & {"async", "async*"}),
        "streams": "async*" in keywords or _return_type(signature) == "Stream",
        "builds": _builds(scan) if target.name == "build" else [],
    }


def _type_facts(target: _Decl, partner: _Decl | None) -> tuple[_Scan, dict[str, Any]]:
    scan = _scan([target.nodes[0]] + ([partner.nodes[0]] if partner else []), None)
    info = _type_info(target.nodes[0])
    role, state_of = _widget_role(info)
    fields, _ = _fields(target)
    state_decl = partner or target
    state: list[str] = []
    if role in ("widget state", "change notifier") or partner is not None:
        declared, state = _fields(state_decl)
        for name in scan.set_state:
            if name in declared:
                _add(state, name)
    builds: list[str] = []
    for build in _build_methods(target) + (_build_methods(partner) if partner else []):
        for name in _builds(_scan(build.nodes, None)):
            _add(builds, name)
    return scan, {
        "name": target.name,
        "kind": target.kind,
        "bases": info.bases,
        "fields": fields,
        "widget": role,
        "state_of": state_of,
        "state": state,
        "builds": builds,
        "is_async": False,
    }


def analyze_dart(code: str) -> CodeFacts | None:
    """Facts about Dart ``code``; None when tree-sitter cannot be used (no grammar, too big).

    The facts describe the one function, method or type the code declares; a
    StatefulWidget together with its State class counts as one widget (its state and what
    it builds come from the State class). Anything else is described as a module.
    """
    source = code.encode("utf-8", "replace")
    parsed = _tree(source)
    if parsed is None:
        return None
    root, top, shift = parsed
    candidates = [d for d in top if _is_candidate(d)]
    pair = _widget_pair(candidates)
    if pair is not None:
        scan, facts = _type_facts(*pair)
    elif len(candidates) == 1 and candidates[0].kind in _TYPE_KINDS:
        scan, facts = _type_facts(candidates[0], None)
    elif len(candidates) == 1:
        scan, facts = _function_facts(candidates[0], bool(shift))
    else:
        scan = _scan(root.children, None)
        facts = {"name": None, "kind": "module", "is_async": scan.awaits}
    calls: list[str] = []
    for call in scan.calls:
        _add(calls, call.name)
    streams = (
        bool(facts.pop("streams", False))
        or "await for" in scan.loops
        or any(
            c.split(".")[-1] in ("listen", "asyncExpand", "asyncMap") or c.startswith("Stream")
            for c in calls
        )
    )
    return CodeFacts(
        language="dart",
        calls=calls,
        loops=scan.loops,
        raises=scan.raises,
        identifiers=scan.identifiers,
        parse_ok=not root.has_error,
        declarations=[_declaration(d, shift) for d in _flatten(top)],
        catches=scan.catches,
        handles_errors=scan.handles_errors,
        literals=scan.literals[:20],
        awaits=scan.awaits,
        streams=streams,
        identifier_counts=dict(scan.counts),
        **facts,
    )
