"""Take costs out of moto that only the emulator has, without changing a single response.

A profile of the sandbox pipeline (moto 5.2.5 in the same process) shows costs real AWS does not have:

- **DynamoDB response serialization.** moto serializes every result with its generic, shape-driven
  ``ResponseSerializer``; for each member of each structure it builds an ``AttributePickerContext`` and asks
  six alias providers (through generators and ``xform_name``) which key holds the value. A store item is ~30
  attributes with a list of audit maps, i.e. hundreds of ``AttributeValue`` structures of 10 members each:
  ~8 ms per UpdateItem. :class:`_FastDynamoJSONSerializer` runs the *same* algorithm (same member order,
  same type conversions, same "absent when None" rules, moto's own JSON encoding of the result) but asks the
  alias providers only once per (structure, member) and remembers the answer: for a plain ``dict`` the
  answer depends on the shapes alone. Anything it cannot prove identical (an object instead of a dict, a
  timestamp, a float where an int is modelled, an ``Enum``, a serialized name, a document type, response
  transformers) makes it hand the whole result back to moto's serializer. Errors (ConditionalCheckFailed
  with its ``Item``) never take the fast path. It is registered where moto itself registers per-service
  serializers (``SERVICE_SPECIFIC_SERIALIZERS``), for the JSON protocol of DynamoDB's item operations only.
- **SQS receive.** ``SQSBackend.receive_message`` checks each message it hands out against the retention
  period through ``get_queue_attributes``, which builds *all* queue attributes three times, including
  approximate counts that scan every message: O(queue length) per message received.
  :func:`_is_message_valid_based_on_retention_period` reads the one attribute it needs, the value
  ``get_queue_attributes(["MessageRetentionPeriod"])`` returns (``Queue.message_retention_period``), with
  the same comparison, the same error for a missing queue and the same ``KeyError`` if it were unset.
  Each receive also lists the queue's visible messages (``Queue.messages``), reading moto's clock twice per
  message through datetime arithmetic (~13 us each: 5 ms per receive on a queue of 200).
  :func:`_visible_messages` reads the clock once per listing and applies the same two comparisons to every
  message: the list moto returns whenever its clock readings coincide (a scan that takes no time), which is
  as much as anyone can observe. The ``deepcopy`` calls in ``receive_message`` copy one message per message
  received and the pending group ids (FIFO only): ~0.1 ms, left as they are.

- **S3 ListObjectVersions.** ``S3Backend.list_object_versions`` deep-copies every version of every key in
  the bucket (bodies included) and only then filters them by the prefix: O(bucket) per call, where S3
  answers from an index (the mover lists one key's versions after each move). While it runs,
  :func:`_list_object_versions` makes the bucket's key store yield only the keys under the prefix to that
  one call (a thread-local, so other threads' listings are untouched). The output is the same: moto drops
  every other key after the copy anyway, the versions of a key stay together and in order, and the
  prefixed keys are contiguous in name order, so moto's marker skipping sees the same items; when a
  ``KeyMarker`` lies outside the prefix (where moto's skipping could see a different first item) the
  filter stays off.
- **EventBridge targets.** Every rule target's event goes through ``EventTemplateParser.parse``, which,
  even without an InputTransformer, parses its default JSONPath expressions with a fresh PLY parser per
  event (~10 ms per finding in the pipeline). :func:`_parse_jsonpath` remembers each parsed expression by
  its text (a parsed ``JSONPath`` is never changed by ``find``; same expression, same matches).

- **DynamoDB TransactWriteItems.** Before a transaction, ``DynamoDBBackend.transact_write_items`` deep-copies
  every table it names, all items, to roll back on a failure: O(table) per transaction, where DynamoDB locks
  the few items named (a flood's group joins, one transaction each, went quadratic: 300 findings, 80 s).
  :func:`_transact_write_items` runs moto's own code with that table copy skipped (the copy module moto's
  models use hands a table back uncopied, on this thread, for this call only) after keeping a copy of each
  named item and the length of each table's stream; when moto rolls back (it raises, having assigned the
  "copies", here the tables themselves, back), those items are put back as they were and the stream records
  the failed transaction appended are dropped, which is what the table copy restored. A request whose items
  it cannot resolve to a table and key is left to moto's code unchanged.

- **SQS send.** ``SQSBackend.send_message`` reads ``queue.attributes`` for one attribute (a FIFO queue's
  ``ContentBasedDeduplication``), and that property builds every attribute, including the approximate counts that
  scan every message: O(queue length) per message sent, quadratic for a flood put on a queue at once. While a
  SendMessage or SendMessageBatch request runs (:func:`_sending`, on that thread), :func:`_queue_attributes` answers
  with that one attribute, computed as the property computes it (absent for a standard queue).

- **DynamoDB Streams GetRecords.** The records (each with the item's old and new images) went through moto's
  generic serializer: about half of moto's CPU while the Security Hub forwarder polls a flood's stream. The same
  memoized serializer serves GetRecords (``FAST_STREAM_OPERATIONS``); the records' ``ApproximateCreationDateTime``
  is converted by moto's own ``TimestampSerializer`` with the format moto would use for it.

- **DynamoDB item sizes.** Every attribute an update sets re-checks the item's 400 KB limit
  (``LimitedSizeDict.__setitem__``) by summing ``DynamoType.size()`` over the whole item, and ``size()`` of a map
  rebuilds each value as a new ``DynamoType`` (recursively, its whole subtree) before sizing it: a dozen SETs on
  a record with an audit list rebuild the record a dozen times. :func:`_dynamo_size` computes the same sum
  without rebuilding: a rebuilt value has the original's type and values, so only what the rebuild would do
  differently is done (a plain dict under a map or a rebuilt list is parsed as ``DynamoType`` parses it).

- **DynamoDB expressions.** UpdateExpression and ConditionExpression (FilterExpression too) are parsed once per
  text instead of on every call, and the update's validation walks and copies its AST without ``copy``'s and the
  walk's own overheads (``moto_expressions``, installed with these patches).

``install()`` / ``uninstall()`` are reference counted and restore exactly what was there (``moto_patches``); it
composes with ``moto_atomic``: they patch different attributes.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections import Counter
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from macie_chatops_sandbox import moto_expressions
from macie_chatops_sandbox.moto_patches import Patches

# The DynamoDB operations whose results take the fast path: the item operations (the store uses GetItem,
# PutItem, UpdateItem, Query and Scan). Their results are plain dicts of AttributeValue JSON; anything else
# falls back to moto's serializer anyway, but the others are not worth the proof.
FAST_DYNAMODB_OPERATIONS: Final = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)

# DynamoDB Streams: the records a poller reads (plain dicts built by moto's StreamRecord).
FAST_STREAM_OPERATIONS: Final = frozenset({"GetRecords"})

_SERVICE: Final = "dynamodb"
_STREAMS_SERVICE: Final = "dynamodbstreams"
_PROTOCOL: Final = "json"

# How many DynamoDB results took the fast path / went to moto's serializer, and how many ListObjectVersions
# calls ran with the prefix filter (approximate under concurrency; the tests read them to prove their
# corpus really took the fast paths).
_counts: Counter[str] = Counter()


def serialized_counts() -> dict[str, int]:
    """``{"fast": n, "moto": m}``: DynamoDB results serialized by the fast path and by moto's serializer."""
    return {"fast": _counts["fast"], "moto": _counts["moto"]}


def stream_reads_serialized() -> dict[str, int]:
    """``{"fast": n, "moto": m}``: GetRecords results serialized by the fast path and by moto's serializer."""
    return {"fast": _counts["fast_streams"], "moto": _counts["moto_streams"]}


def transactions_without_table_copy() -> int:
    """TransactWriteItems calls that kept copies of their items instead of their whole tables."""
    return _counts["item_copy_transactions"]


def filtered_listings() -> int:
    """ListObjectVersions calls that ran with the key store filtered by their prefix."""
    return _counts["filtered_listings"]


class _Unsupported(Exception):
    """A value the fast path cannot prove it serializes as moto does: serialize the whole result with moto."""


_ABSENT: Final = object()  # what moto's serializer leaves unset (a structure whose value is None)


@dataclass
class _Member:
    key: str
    candidates: tuple[str, ...]  # the keys moto's attribute picker tries, in its order, for a dict
    plan: _Plan


@dataclass
class _Plan:
    """How moto serializes one shape, for plain Python data (filled in lazily: shapes are recursive)."""

    type_name: str
    members: list[_Member] = field(default_factory=list)
    item: _Plan | None = None  # list member / map value
    timestamp_format: str = ""  # a timestamp: the format moto's TimestampSerializer is given for it


class _PlanCache:
    """Plans keyed by shape name (within one service model a shape name is one shape), built once.

    A family of plans is built privately and published whole, so a reader never sees a plan half built."""

    def __init__(self, default_timestamp_format: str) -> None:
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Lock()
        self._default_timestamp_format = default_timestamp_format

    def plan(self, shape: Any) -> _Plan:
        cached = self._plans.get(shape.name)
        if cached is not None:
            return cached
        with self._lock:
            building: dict[str, _Plan] = {}
            plan = self._build(shape, building)
            self._plans.update(building)
            return plan

    def _build(self, shape: Any, building: dict[str, _Plan]) -> _Plan:
        from moto.core.serialize import AttributePickerContext, XFormedAttributePicker

        existing = self._plans.get(shape.name) or building.get(shape.name)
        if existing is not None:
            return existing
        plan = _Plan(shape.type_name)
        building[shape.name] = plan  # before its parts: shapes are recursive (AttributeValue -> L -> ...)
        if shape.type_name == "structure":
            if shape.is_document_type:
                plan.type_name = "unsupported"
            picker = XFormedAttributePicker()
            for member_key, member_shape in shape.members.items():
                # moto's serializer sets this before picking; the alias providers read it.
                member_shape.parent = shape
                context = AttributePickerContext(obj={}, key=member_key, shape=member_shape)
                candidates = tuple(picker.get_possible_keys(context))
                if member_shape.serialization.get("name", member_key) != member_key or any(
                    not isinstance(candidate, str) or "." in candidate for candidate in candidates
                ):
                    plan.type_name = "unsupported"  # renamed members, dotted paths: leave them to moto
                plan.members.append(_Member(member_key, candidates, self._build(member_shape, building)))
        elif shape.type_name == "list":
            member_shape = shape.member
            if "name" in member_shape.serialization:
                plan.type_name = "unsupported"  # moto would then append the raw element
            plan.item = self._build(member_shape, building)
        elif shape.type_name == "map":
            if "name" in shape.value.serialization:
                plan.type_name = "unsupported"  # moto would then store every value under that one name
            plan.item = self._build(shape.value, building)
        elif shape.type_name == "timestamp":
            # TimestampSerializer.serialize: the shape's own format, else the serializer's default
            plan.timestamp_format = shape.serialization.get("timestampFormat", self._default_timestamp_format)
        return plan


def _serialize(value: Any, plan: _Plan) -> Any:
    """One value as moto's ``BaseJSONSerializer._serialize`` would store it (``_ABSENT``: it stores nothing)."""
    serializer = _BY_TYPE.get(plan.type_name)
    if serializer is None:
        raise _Unsupported  # timestamps, documents, unsupported structures, anything new
    return serializer(value, plan)


def _structure(value: Any, plan: _Plan) -> Any:
    if value is None:
        return _ABSENT  # moto's structure serialization returns without storing anything
    if type(value) is not dict:
        raise _Unsupported  # objects are picked by attribute, Meta aliases, class-name prefixes...
    return _serialize_members(value, plan)


def _string(value: Any, plan: _Plan) -> Any:
    if type(value) is not str:
        raise _Unsupported  # Enums, None and str() of other types: moto's own conversion
    return value


def _list(value: Any, plan: _Plan) -> Any:
    if type(value) is not list:
        raise _Unsupported
    item_plan = plan.item
    assert item_plan is not None
    serialized_list = []
    for element in value:
        serialized = _serialize(element, item_plan)
        # moto appends the raw element when serializing it stored nothing (a None structure).
        serialized_list.append(element if serialized is _ABSENT else serialized)
    return serialized_list


def _map(value: Any, plan: _Plan) -> Any:
    if type(value) is not dict:
        raise _Unsupported
    value_plan = plan.item
    assert value_plan is not None
    serialized_map = {}
    for map_key, map_value in value.items():
        if not map_key:
            raise _Unsupported  # moto serializes a structure under an empty key into the map itself
        serialized = _serialize(map_value, value_plan)
        if serialized is not _ABSENT:
            serialized_map[map_key] = serialized
    return serialized_map


def _blob(value: Any, plan: _Plan) -> Any:
    # ResponseSerializer._base64
    if type(value) is str:
        value = value.encode("utf-8")
    elif type(value) is not bytes:
        raise _Unsupported
    return base64.b64encode(value).strip().decode("utf-8")


def _boolean(value: Any, plan: _Plan) -> Any:
    if type(value) is not bool:
        raise _Unsupported
    return value  # moto has no boolean serializer: the value is stored as it is


def _integer(value: Any, plan: _Plan) -> Any:
    if type(value) is not int:
        raise _Unsupported
    return value  # int(value)


def _float(value: Any, plan: _Plan) -> Any:
    if type(value) is not int and type(value) is not float:
        raise _Unsupported
    return float(value)


def _timestamp(value: Any, plan: _Plan) -> Any:
    from moto.core.serialize import TimestampSerializer

    if type(value) is not datetime:
        raise _Unsupported  # strings and numbers: moto's own parsing of them
    # ResponseSerializer._serialize_type_timestamp -> TimestampSerializer.serialize (the format only is its own)
    return TimestampSerializer(plan.timestamp_format)._convert_timestamp_to_str(value, plan.timestamp_format)


_BY_TYPE: Final[dict[str, Callable[[Any, _Plan], Any]]] = {
    "structure": _structure,
    "string": _string,
    "list": _list,
    "map": _map,
    "blob": _blob,
    "boolean": _boolean,
    "integer": _integer,
    "long": _integer,
    "float": _float,
    "double": _float,
    "timestamp": _timestamp,
}


def _serialize_members(value: dict[str, Any], plan: _Plan) -> dict[str, Any]:
    serialized: dict[str, Any] = {}
    for member in plan.members:
        # moto's picker: the first candidate key present in the dict, else None.
        for candidate in member.candidates:
            if candidate in value:
                member_value = value[candidate]
                break
        else:
            continue
        if member_value is None:
            continue
        result = _serialize(member_value, member.plan)
        if result is not _ABSENT:
            serialized[member.key] = result
    return serialized


def _fast_serializer_class(base: type, operations: frozenset[str], counted_as: str) -> type:
    from moto.core.serialize import DEFAULT_ALIAS_PROVIDERS, ResponseSerializer, XFormedAttributePicker

    assert issubclass(base, ResponseSerializer)
    default_timestamp_format = base.DEFAULT_TIMESTAMP_FORMAT
    plans = _PlanCache(default_timestamp_format)

    class _FastDynamoJSONSerializer(base):
        """moto's JSON serializer with the attribute picking of item results memoized (see module doc)."""

        def _serialize_result(self, resp: Any, result: Any) -> Any:
            output_shape = self.operation_model.output_shape
            picker = self._value_picker
            if (
                self.operation_name in operations
                and self._timestamp_serializer.default_format == default_timestamp_format
                and output_shape is not None
                and type(picker) is XFormedAttributePicker
                and not picker.response_transformers
                and picker.alias_providers is DEFAULT_ALIAS_PROVIDERS
            ):
                try:
                    serialized_result = _serialize_top(result, plans.plan(output_shape))
                except _Unsupported:
                    pass
                else:
                    _counts["fast" + counted_as] += 1
                    return self._serialized_result_to_response(resp, result, output_shape, serialized_result)
            _counts["moto" + counted_as] += 1
            return super()._serialize_result(resp, result)

    return _FastDynamoJSONSerializer


def _serialize_top(result: Any, plan: _Plan) -> MutableMapping[str, Any]:
    """The output structure at the top level: moto fills the result mapping itself (empty for None)."""
    if plan.type_name != "structure":
        raise _Unsupported
    if result is None:
        return {}
    if type(result) is not dict:
        raise _Unsupported
    return _serialize_members(result, plan)


def _is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
    """moto's check, reading the one attribute instead of building them all (same value, same errors)."""
    from moto.sqs import models

    retention_period = self.get_queue(queue_name).message_retention_period
    if retention_period is None:
        # get_queue_attributes leaves an unset attribute out; moto's check then fails on the lookup.
        raise KeyError("MessageRetentionPeriod")
    retain_until = retention_period + message.sent_timestamp / 1000
    return bool(retain_until > models.unix_time())  # the name moto's check reads


def _visible_messages(self: Any) -> list[Any]:
    """``Queue.messages`` with one clock reading: visible (now > visible_at) and not delayed (now < delayed_until)."""
    from moto.sqs import models

    now = models.unix_time_millis()  # the name moto's Message.visible / .delayed read
    return [message for message in self._messages if now > message.visible_at and not now < message.delayed_until]


_listing = threading.local()  # .prefix: the key prefix of the ListObjectVersions running on this thread


def _keys_under_listing_prefix(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``_VersionedKeyStore.iterlists``: only the keys under this thread's listing prefix, if one is set."""

    def iterlists(self: Any) -> Any:
        prefix = getattr(_listing, "prefix", None)
        for key, versions in original(self):
            if prefix is None or key.startswith(prefix):
                yield key, versions

    return iterlists


def _list_object_versions(original: Callable[..., Any]) -> Callable[..., Any]:
    """``S3Backend.list_object_versions`` with the key store filtered by the prefix for the call's duration."""
    import functools
    import inspect

    signature = inspect.signature(original)

    @functools.wraps(original)
    def list_object_versions(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        prefix = bound.arguments.get("prefix") or ""
        key_marker = bound.arguments.get("key_marker")
        if not prefix or (key_marker is not None and not key_marker.startswith(prefix)):
            return original(*args, **kwargs)
        _listing.prefix = prefix
        _counts["filtered_listings"] += 1
        try:
            return original(*args, **kwargs)
        finally:
            _listing.prefix = None

    return list_object_versions


def _parse_jsonpath(original: Callable[..., Any]) -> Callable[..., Any]:
    """``jsonpath_ng.ext.parse``, each expression text parsed once."""
    import functools

    @functools.wraps(original)
    @functools.lru_cache(maxsize=256)
    def parse(path: str, debug: bool | None = None) -> Any:
        return original(path, debug)

    return parse


_skip_table_copy = threading.local()


class _CopyUnlessTable:
    """The ``copy`` module for moto's DynamoDB models: ``deepcopy`` of a table is the table itself while this
    thread runs :func:`_transact_write_items`; everything else is the real module's."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if getattr(_skip_table_copy, "on", False) and isinstance(value, Table):
            return value
        return self._real.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@dataclass
class _SavedItem:
    table: Any
    hash_key: Any
    range_key: Any
    item: Any  # a copy of the item before the transaction, or None when there was none


def _saved_items(backend: Any, transact_items: Any) -> tuple[list[_SavedItem], dict[int, tuple[Any, int]]] | None:
    """A copy of every item the transaction names, and each table's stream length; None when one cannot be
    resolved (moto's own code then decides, on its own copies)."""
    import copy

    from moto.dynamodb.models.dynamo_type import DynamoType

    saved: list[_SavedItem] = []
    streams: dict[int, tuple[Any, int]] = {}
    try:
        for entry in transact_items:
            ((op_type, op),) = entry.items()
            table = backend.tables[op["TableName"]]
            source = op["Item"] if op_type == "Put" else op["Key"]
            hash_key = DynamoType(source[table.hash_key_attr])
            range_key = DynamoType(source[table.range_key_attr]) if table.range_key_attr else None
            current = table.get_item(hash_key, range_key)
            saved.append(_SavedItem(table, hash_key, range_key, copy.deepcopy(current)))
            shard = table.stream_shard
            if shard is not None and id(table) not in streams:
                streams[id(table)] = (shard, len(shard.items))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return saved, streams


def _put_back(saved: list[_SavedItem], streams: dict[int, tuple[Any, int]]) -> None:
    for entry in reversed(saved):  # the first copy of an item named twice is the one from before
        store = entry.table.items
        if entry.range_key is not None:
            store = store.setdefault(entry.hash_key, {})
        key = entry.range_key if entry.range_key is not None else entry.hash_key
        if entry.item is None:
            store.pop(key, None)
        else:
            store[key] = entry.item
    for shard, length in streams.values():
        del shard.items[length:]


def _transact_write_items(original: Callable[..., Any]) -> Callable[..., Any]:
    """``DynamoHandler.transact_write_items`` (the request handler, which validates the request and calls the
    backend): the copies, moto's code and the putting back all under moto_atomic's write lock when it is
    installed, so no other write comes between them."""

    def transact_write_items(self: Any) -> Any:
        from macie_chatops_sandbox import moto_atomic

        lock = moto_atomic.dynamodb_write_lock()
        with lock if lock is not None else contextlib.nullcontext():
            items = self.body.get("TransactItems") if isinstance(self.body, dict) else None
            saved = _saved_items(self.dynamodb_backend, items) if isinstance(items, list) else None
            if saved is None:
                return original(self)
            _counts["item_copy_transactions"] += 1
            _skip_table_copy.on = True
            try:
                return original(self)
            except BaseException:
                _put_back(*saved)
                raise
            finally:
                _skip_table_copy.on = False

    return transact_write_items


_sending_now = threading.local()


def _send_attributes(queue: Any) -> dict[str, Any]:
    """The attributes sending a message reads, as ``Queue.attributes`` has them: a FIFO queue's
    ContentBasedDeduplication (a bool there becomes "true"/"false"); none for a standard queue."""
    if not queue.fifo_queue:
        return {}
    value = queue.content_based_deduplication
    return {"ContentBasedDeduplication": str(value).lower() if isinstance(value, bool) else value}


def _queue_attributes(original: property) -> property:
    def attributes(self: Any) -> Any:
        if getattr(_sending_now, "on", False):
            _counts["light_send_attributes"] += 1
            return _send_attributes(self)
        return original.fget(self) if original.fget is not None else None

    return property(attributes)


def _sending(original: Callable[..., Any]) -> Callable[..., Any]:
    def handler(self: Any) -> Any:
        _sending_now.on = True
        try:
            return original(self)
        finally:
            _sending_now.on = False

    return handler


_SETS: Final = frozenset({"SS", "NS", "BS"})  # DDBType's sets


def _dynamo_size(self: Any) -> int:
    """``DynamoType.size``: the same sizes, the same errors, without rebuilding each map value first."""
    return _sized(self, rebuilt=False)


def _sized(value: Any, *, rebuilt: bool) -> int:
    """``value.size()`` as moto computes it; ``rebuilt``: ``value`` is one moto's map branch would have rebuilt
    with ``DynamoType(value)`` (its list members rebuilt too, a plain dict among them parsed)."""
    dynamo_type, bytesize = _SIZING
    kind = value.type
    if kind == "N":
        return len(str(value.value))
    if kind in _SETS:  # DynamoType({sub_type: v}).size() of each member: a number, a string or a binary
        return sum(_scalar_size(kind[0], member) for member in value.value)
    if kind == "L":
        total = 0
        for member in value.value:
            if type(member) is dynamo_type:
                total += _sized(member, rebuilt=rebuilt)
            elif rebuilt:
                total += _sized(dynamo_type(member), rebuilt=True)
            else:
                total += member.size()  # moto calls it on whatever is there
        return total
    if kind == "M":
        total = 0
        for key, member in value.value.items():
            # moto: bytesize(k) + DynamoType(v).size(), and DynamoType(v) of a DynamoType has its type and values
            member_type = member if type(member) is dynamo_type else dynamo_type(member)
            total += bytesize(key) + _sized(member_type, rebuilt=True)
        return total
    if isinstance(value.value, bool):
        return 1
    return bytesize(value.value)


def _scalar_size(kind: str, member: Any) -> int:
    if kind == "N":
        return len(str(member))
    if isinstance(member, bool):
        return 1
    return _SIZING[1](member)


_SIZING: list[Any] = [None, None]  # moto's DynamoType and bytesize, set when installed (moto imported late)


def light_send_attributes() -> int:
    """How many times sending read a queue's attributes the light way."""
    return _counts["light_send_attributes"]


def _register_serializer(patches: Patches, service: str, operations: frozenset[str], counted_as: str) -> None:
    """The fast serializer for ``service``'s JSON protocol, where moto looks per-service serializers up."""
    from moto.core import serialize

    registry = serialize.SERVICE_SPECIFIC_SERIALIZERS
    had_service = service in registry
    service_serializers = registry.setdefault(service, {})
    previous = service_serializers.get(_PROTOCOL)
    base = previous if previous is not None else serialize.SERIALIZERS[_PROTOCOL]
    service_serializers[_PROTOCOL] = _fast_serializer_class(base, operations, counted_as)

    def restore_serializer() -> None:
        if previous is not None:
            service_serializers[_PROTOCOL] = previous
        else:
            service_serializers.pop(_PROTOCOL, None)
        if not had_service and not service_serializers:
            registry.pop(service, None)

    patches.on_uninstall(restore_serializer)


def _apply(patches: Patches) -> None:
    from moto.sqs.models import Queue, SQSBackend
    from moto.sqs.responses import SQSResponse

    _register_serializer(patches, _SERVICE, FAST_DYNAMODB_OPERATIONS, "")
    _register_serializer(patches, _STREAMS_SERVICE, FAST_STREAM_OPERATIONS, "_streams")
    moto_expressions.apply(patches)

    import jsonpath_ng.ext
    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize
    from moto.dynamodb.responses import DynamoHandler
    from moto.s3.models import S3Backend
    from moto.s3.utils import _VersionedKeyStore

    for target, name, replacement in (
        (SQSBackend, "is_message_valid_based_on_retention_period", _is_message_valid_based_on_retention_period),
        (Queue, "messages", property(_visible_messages)),
        (_VersionedKeyStore, "iterlists", _keys_under_listing_prefix(_VersionedKeyStore.iterlists)),
        (S3Backend, "list_object_versions", _list_object_versions(S3Backend.list_object_versions)),
        # moto.events.utils imports it from the module on every call, so the module attribute is the one.
        (jsonpath_ng.ext, "parse", _parse_jsonpath(jsonpath_ng.ext.parse)),
        (dynamodb_models, "copy", _CopyUnlessTable(dynamodb_models.copy)),
        (DynamoHandler, "transact_write_items", _transact_write_items(DynamoHandler.transact_write_items)),
        (Queue, "attributes", _queue_attributes(Queue.__dict__["attributes"])),
        (SQSResponse, "send_message", _sending(SQSResponse.send_message)),
        (SQSResponse, "send_message_batch", _sending(SQSResponse.send_message_batch)),
        (DynamoType, "size", _dynamo_size),
    ):
        patches.replace(target, name, replacement)
    _SIZING[:] = [DynamoType, bytesize]


_PATCHES = Patches(_apply)
install = _PATCHES.install
uninstall = _PATCHES.uninstall
installed = _PATCHES.installed
