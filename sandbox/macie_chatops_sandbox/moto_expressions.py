"""DynamoDB expressions parsed once per text instead of on every call (part of ``moto_fast``).

moto parses every UpdateExpression and ConditionExpression (FilterExpression too) in Python on every call, and
an UpdateItem parses each twice (the request handler, then the backend); a TransactWriteItems item up to three
times. The store's expressions are long (a transition sets and removes about fifteen attributes) and few: they
use placeholders, so only ExpressionAttributeNames/Values change from call to call.

- **UpdateExpression**: ``UpdateExpressionParser.make`` depends on the text alone (the tokenizer and parser never
  see the names or values). Its AST is cached by text and the same object handed to every caller: moto's callers
  only read it (``find_clauses``) or hand it to ``UpdateExpressionValidator``, which deep-copies it before its
  processors replace nodes in place. Handing out a copy instead would cost about what the parse costs.
- **ConditionExpression**: ``ConditionExpressionParser.parse`` looks the names and values up while it parses
  (they end up in the node tree it builds, then in the ``Op`` tree). What is cached by text is that node tree,
  the order of its lookups and the placeholders it reports; a later parse of the same text looks the same
  placeholders up in the same order (any that fails: moto's own parse runs, and raises its own error), puts the
  results where moto's parse put them and builds the ``Op`` tree with moto's own ``_make_op_condition``.

Only a parse that succeeded is cached: an invalid expression goes through moto's parser every time. Both caches
are bounded LRUs.

What an UpdateItem then spends most on is validating the update's AST against the item (ten processors, each a
depth-first walk that replaces nodes in place, on a deep copy of the AST):

- **The walks.** ``DepthFirstTraverser.traverse_node_recursively`` asks ``nodes_to_be_processed()`` at every
  node, which builds the processor's whole ``_processing_map`` (a dict of bound methods) to take its keys.
  :func:`_traverse` runs the same walk (same order, same hook calls, same replacements) asking once per walk:
  the keys are class literals in every processor moto has; and it asks ``isinstance`` (ABC checks, by the
  node's class alone) once per class and walk. A processor that overrides the walk or
  ``nodes_to_be_processed`` gets moto's own walk.
- **The copy.** ``Validator`` deep-copies the AST with ``copy.deepcopy`` (the generic reduce protocol per node).
  :func:`_deepcopy` copies a tree of plain ``Node`` objects attribute by attribute, with the same memo (an
  object reached twice is copied once: the parent links), and hands anything else to ``copy.deepcopy``.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from macie_chatops_sandbox.moto_patches import Patches

# Distinct expression texts kept: the pipeline sends a few dozen; the tests' corpora a few hundred at most.
CACHE_SIZE: Final = 512

_counts: Counter[str] = Counter()

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def expression_cache_counts() -> dict[str, int]:
    """Parses answered from the caches and parses that ran moto's parser (misses, errors included)."""
    return {
        "update_hits": _counts["update_hits"],
        "update_parses": _counts["update_parses"],
        "condition_hits": _counts["condition_hits"],
        "condition_parses": _counts["condition_parses"],
    }


class _Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


def _cached_update_parse(original: Callable[[type, str], Any]) -> classmethod[Any, [str], Any]:
    """``UpdateExpressionParser.make``: one AST per (parser class, text), shared (see the module doc)."""
    asts: _Lru[tuple[type, str], Any] = _Lru(CACHE_SIZE)

    def make(cls: type, expression_str: str) -> Any:
        if type(expression_str) is not str:
            return original(cls, expression_str)
        ast = asts.get((cls, expression_str))
        if ast is not None:
            _counts["update_hits"] += 1
            return ast
        _counts["update_parses"] += 1
        ast = original(cls, expression_str)  # an invalid expression raises here: nothing is cached
        asts.put((cls, expression_str), ast)
        return ast

    return classmethod(make)


@dataclass(frozen=True)
class _ParsedCondition:
    """What moto's parse of one condition text built, before its ``Op`` tree."""

    root: Any  # the ConditionExpressionParser.Node moto's parse hands to _make_op_condition
    lookups: tuple[tuple[bool, str], ...]  # (a value?, placeholder), in the order moto's parse looks them up
    names_found: tuple[str, ...]
    values_found: tuple[str, ...]


_VALUE_KIND: Final = "EXPRESSION_ATTRIBUTE_VALUE"
_IDENTIFIER: Final = "IDENTIFIER"


def _looked_up(parser: Any, cached: _ParsedCondition) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The names and values the cached parse looked up, from this parser's maps; None when one is missing."""
    names: dict[str, Any] = {}
    values: dict[str, Any] = {}
    try:
        for is_value, placeholder in cached.lookups:
            if is_value:
                values[placeholder] = parser.expression_attribute_values[placeholder]
            else:
                names[placeholder] = parser.expression_attribute_names[placeholder]
    except Exception:  # whatever it is, moto's own parse raises it for this input (the caller falls back)
        return None
    return names, values


def _resolved(node: Any, names: Mapping[str, Any], values: Mapping[str, Any]) -> Any:
    """The cached node tree with this call's names and values where moto's parse put them."""
    if node.kind == _VALUE_KIND:
        return node._replace(value=values[node.text])
    if node.nonterminal == _IDENTIFIER and node.text.startswith("#"):
        return node._replace(value=names[node.text])
    if not node.children:
        return node
    return node._replace(children=[_resolved(child, names, values) for child in node.children])


def _parse_recorded(parser: Any, original: Callable[[Any], Any]) -> tuple[Any, _ParsedCondition | None]:
    """moto's parse, recording its lookups and the node tree it builds the ``Op`` tree from."""
    lookups: list[tuple[bool, str]] = []
    roots: list[Any] = []
    lookup_value = parser._lookup_expression_attribute_value
    lookup_name = parser._lookup_expression_attribute_name
    make_op_condition = parser._make_op_condition
    names_before = len(parser.expr_attr_names_found)
    values_before = len(parser.expr_attr_values_found)

    def value(name: str) -> Any:
        lookups.append((True, name))
        return lookup_value(name)

    def name(placeholder: str) -> Any:
        lookups.append((False, placeholder))
        return lookup_name(placeholder)

    def op_condition(node: Any) -> Any:
        if not roots:
            roots.append(node)
        return make_op_condition(node)

    parser._lookup_expression_attribute_value = value
    parser._lookup_expression_attribute_name = name
    parser._make_op_condition = op_condition
    try:
        op = original(parser)
    finally:
        del parser._lookup_expression_attribute_value
        del parser._lookup_expression_attribute_name
        del parser._make_op_condition
    if len(roots) != 1:
        return op, None  # not built the way this cache knows (an empty expression): nothing to reuse
    parsed = _ParsedCondition(
        root=roots[0],
        lookups=tuple(lookups),
        names_found=tuple(parser.expr_attr_names_found[names_before:]),
        values_found=tuple(parser.expr_attr_values_found[values_before:]),
    )
    return op, parsed


def _cached_condition_parse(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``ConditionExpressionParser.parse``: the node tree per text, this call's names and values put in."""
    trees: _Lru[str, _ParsedCondition] = _Lru(CACHE_SIZE)

    def parse(self: Any) -> Any:
        expression = self.condition_expression
        if not expression or type(expression) is not str:
            return original(self)
        cached = trees.get(expression)
        if cached is not None:
            looked_up = _looked_up(self, cached)
            if looked_up is not None:
                _counts["condition_hits"] += 1
                root = _resolved(cached.root, *looked_up)
                self.expr_attr_names_found.extend(cached.names_found)
                self.expr_attr_values_found.extend(cached.values_found)
                return self._make_op_condition(root)
        _counts["condition_parses"] += 1
        op, parsed = _parse_recorded(self, original)  # an invalid expression raises here: nothing is cached
        if parsed is not None:
            trees.put(expression, parsed)
        return op

    return parse


_ATOMS: Final = frozenset({str, int, float, bool, type(None)})


def _deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``copy.deepcopy`` for the validators' module: an AST copied node by node, anything else by ``copy``.

    The memo maps what was copied to its copy, as ``copy.deepcopy``'s does (an object reached twice is copied
    once: the parent links); what is copied stays alive meanwhile in the tree it comes from."""
    if memo is None:
        memo = {}
    kind = type(value)
    if kind in _ATOMS:
        return value
    copied = memo.get(id(value))
    if copied is not None:
        return copied
    if kind is list:
        copied = memo[id(value)] = []
        copied.extend([_deepcopy(element, memo) for element in value])
        return copied
    plain = _plain_nodes.get(kind)
    if plain is None:
        plain = _plain_nodes[kind] = _plain_node(kind)
    if not plain:
        return copy.deepcopy(value, memo)
    copied = memo[id(value)] = object.__new__(kind)
    state = copied.__dict__
    for name, attribute in value.__dict__.items():
        state[name] = _deepcopy(attribute, memo)
    return copied


_plain_nodes: dict[type, bool] = {}


def _plain_node(kind: type) -> bool:
    """An AST node class that copy.deepcopy copies as a plain object: a new instance given a copy of its
    ``__dict__`` (no custom copy, pickling or slots)."""
    import copyreg

    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    return (
        issubclass(kind, Node)
        and kind.__reduce_ex__ is object.__reduce_ex__
        and kind.__reduce__ is object.__reduce__
        and getattr(kind, "__getstate__", None) is getattr(object, "__getstate__", None)
        and kind.__new__ is object.__new__
        and not any(hasattr(kind, name) for name in ("__deepcopy__", "__setstate__", "__slots__"))
        and kind not in copy._deepcopy_dispatch  # type: ignore[attr-defined]
        and kind not in copyreg.dispatch_table
    )


def _traverse(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``DepthFirstTraverser.traverse`` asking ``nodes_to_be_processed()`` once per walk (see the module doc)."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]

    moto_walk = DepthFirstTraverser.traverse_node_recursively
    moto_types = DepthFirstTraverser.nodes_to_be_processed

    def traverse(self: Any, node: Any) -> Any:
        processor = type(self)
        if processor.traverse_node_recursively is not moto_walk or processor.nodes_to_be_processed is not moto_types:
            return original(self, node)
        processed = self.nodes_to_be_processed()
        before_child = self.pre_processing_of_child
        process = self.process
        # isinstance against these ABCs answers by the node's class alone: asked once per class and walk
        is_node: dict[type, bool] = {}
        is_processed: dict[type, bool] = {}

        def walk(node: Any, child_id: int) -> Any:
            # DepthFirstTraverser.traverse_node_recursively, line for line
            kind = type(node)
            node_kind = is_node.get(kind)
            if node_kind is None:
                node_kind = is_node[kind] = isinstance(node, Node)
            if node_kind:
                parent_node = node.parent
                if node.children is not None:
                    for i, child_node in enumerate(node.children):
                        before_child(node, i)
                        walk(child_node, i)
                processed_kind = is_processed.get(kind)
                if processed_kind is None:
                    processed_kind = is_processed[kind] = isinstance(node, processed)
                if processed_kind:
                    node = process(node)
                    node.parent = parent_node
                    if parent_node:
                        parent_node.children[child_id] = node
            return node

        return walk(node, -1)

    return traverse


def apply(patches: Patches) -> None:
    """Install the caches, the walk and the copy through ``patches`` (``moto_fast``'s)."""
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    patches.replace(
        UpdateExpressionParser, "make", _cached_update_parse(UpdateExpressionParser.__dict__["make"].__func__)
    )
    patches.replace(ConditionExpressionParser, "parse", _cached_condition_parse(ConditionExpressionParser.parse))
    patches.replace(DepthFirstTraverser, "traverse", _traverse(DepthFirstTraverser.traverse))
    patches.replace(validators, "deepcopy", _deepcopy)  # Validator's copy of the AST (and its functions' args)
