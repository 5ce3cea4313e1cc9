"""tree-sitter parsing shared by the Dart and JavaScript analysers.

The grammars come from the per-language PyPI packages (``tree-sitter-dart``,
``tree-sitter-javascript``), which ship compiled parsers: nothing is downloaded at run
time. A parser is made once per thread (tree-sitter parsers are not thread-safe) and
reused; a parse of a typical function takes well under a millisecond, and callers
memoise their facts on top.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from tree_sitter import Language, Node, Parser, Tree

from codi_eval.code_facts.facts import Declaration

# Above these the token fallback answers instead: walking a tree node by node from Python
# costs about a microsecond per node, and no summarised snippet is this large.
MAX_SOURCE_BYTES = 512 * 1024
MAX_NODES = 300_000

_GRAMMAR_MODULES = {"dart": "tree_sitter_dart", "javascript": "tree_sitter_javascript"}
_local = threading.local()


@functools.cache
def grammar(language: str) -> Language | None:
    """The compiled grammar for ``language``, or None when its package is not installed."""
    module_name = _GRAMMAR_MODULES.get(language)
    if module_name is None:
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return Language(module.language())


def _parser(language: str) -> Parser | None:
    parsers: dict[str, Parser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(language)
    if parser is None:
        lang = grammar(language)
        if lang is None:
            return None
        parser = parsers[language] = Parser(lang)
    return parser


def parse(source: bytes, language: str, *, bounded: bool = True) -> Tree | None:
    """The syntax tree of ``source``; None when there is no grammar, or (``bounded``, the
    default for code facts) when the input is too large to walk cheaply. tree-sitter never
    fails on bad input: it marks ERROR nodes. The dataset builders parse whole files
    with ``bounded=False``."""
    if bounded and len(source) > MAX_SOURCE_BYTES:
        return None
    parser = _parser(language)
    if parser is None:
        return None
    tree = parser.parse(source)
    if tree is None or (bounded and tree.root_node.descendant_count > MAX_NODES):
        return None
    return tree


def text(node: Node | None) -> str:
    """The node's source text (invalid UTF-8 replaced, never raises)."""
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", "replace")


def walk(node: Node) -> Iterator[Node]:
    """Every node below ``node`` (itself first), depth first in source order, without
    recursion, so deeply nested input cannot exhaust Python's stack."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if current.child_count:
            stack.extend(reversed(current.children))


def first_error(node: Node) -> Node | None:
    """The first ERROR or MISSING node under ``node``, in source order, or None."""
    if not node.has_error:
        return None
    for current in walk(node):
        if current.is_error or current.is_missing:
            return current
    return None


@dataclass(frozen=True)
class Outline:
    """A whole source file as the dataset builders see it: its tree and its declarations."""

    root: Node
    declarations: list[Declaration]
    doc_comments: list[tuple[int, int]]  # byte ranges of every doc comment in the file
