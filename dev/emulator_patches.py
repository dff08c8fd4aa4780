"""Changes to moto that keep the local stack's cost per request flat as the stack fills.

Each one removes a cost that grows with everything the emulator has ever held, and none changes
what a client can observe (the race, condition and stream tests run against the patched server):

- Transactions snapshot only the items they touch. moto's TransactWriteItems deep-copies every
  table it touches, once per item of the transaction, and restores the copy on failure: O(table)
  per write. Here the conditions are checked first, without writing; only when all of them hold
  are the writes applied, each touched item saved beforehand, so a write that fails midway is
  undone item by item and its stream records are dropped. A cancelled transaction leaves no write
  and no stream record behind, as in DynamoDB.
- Only the mail is tracked for /moto-api/data.json. moto keeps a reference to every model object
  it ever creates (every DynamoDB item, every copy of one, every stream record and iterator, every
  SQS message) so that its dashboard can list them: memory that is never freed, and a dump that
  walks all of it each time the mailbox is read. The mailbox reads only SES messages.
- A Query on the table's key reads that partition only. moto walks and sorts every item of the
  table for each Query.
- A Query on an index by its partition key (and a condition on its sort key, if any: the due-date
  sweep's `due_sk <= today`) reads that partition, kept sorted between queries and brought up to date from a log of the keys written since (only those items are looked at
  again), and starts a page at its ExclusiveStartKey by lookup. moto walks and sorts every item
  of the table and then skips item by item to the start key, for every page: reading a person's
  million records a page at a time cost O(table) per page, and on the request table, written by
  every request, each Query cost O(table).
- The data plane's results (DynamoDB's item reads and writes, the stream's GetRecords) are written
  out as the JSON they already are, instead of through moto's serializer, which walks every value
  against the API's shapes (85% of the emulator's time while an export read a million records; a
  stream read of a few records cost 20 ms).
- An update expression's tokens, and a condition's, are kept for the next request that sends the
  same expression (moto tokenizes an update two or three times per UpdateItem, a quarter of its
  cost, and a condition with a dozen regular expressions per token).
- An update expression is parsed once; each UpdateItem validates a copy of its tree made node by
  node (moto parses it twice per call and deep-copies the tree generically, following every
  parent link through the copy's memo: a third of an UpdateItem's cost).
- The backend serving a host is looked up once per host, not matched against every service's
  URL patterns on each request, and a handler's method names are listed once per class, not on
  every request.
- An S3 listing by prefix reads the keys under that prefix, from a sorted index of each bucket's
  key names kept up to date as objects are written and deleted. moto copies and walks every key
  of the bucket for each ListObjects: an export that lists its own parts cost O(bucket), and the
  bucket holds every export ever made.
- DynamoDB, DynamoDB Streams and SQS calls (JSON protocols: one path, the operation in the
  X-Amz-Target header) go straight to moto's handler for the service, not through the Flask app
  moto builds per service (URL map, request context, CORS, response finalizing): a fifth of the
  emulator's time per call, for a request whose handler the header names.
- The stream keeps its newest records (EMULATOR_STREAM_KEEP, default 20,000), like DynamoDB
  Streams' retention window: older records are trimmed, and an iterator older than the trim
  horizon reads from the oldest record kept. Used shard iterators are forgotten after a while
  (a reader moves to the next one each GetRecords; AWS expires them after 15 minutes).

One addition, off unless asked for (EMULATOR_METER=1 or PUT /_local/meter): a meter of every AWS
call, with DynamoDB's capacity units computed from item sizes as AWS bills them (below, and
`make bench-e2e`).
"""

from __future__ import annotations

import copy
import os
import threading
from bisect import bisect_left
from collections import OrderedDict
from typing import Any

_TRACKED_SERVICES = frozenset({"ses", "sesv2"})
_STREAM_KEEP = int(os.environ.get("EMULATOR_STREAM_KEEP", "20000"))
_ITERATORS_KEPT = 4096


def apply() -> None:
    _remembered_backends()
    _remembered_method_names()
    _track_only_mail()
    _isolated_transactions()
    _partition_queries()
    _index_queries()
    _plain_results()
    _cached_update_tokens()
    _cached_condition_lexing()
    _update_trees_copied_by_shape()
    _metered_reads()
    _bounded_streams()
    _sorted_key_listing()


def _remembered_backends() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    lookup = DomainDispatcherApplication.get_backend_for_host

    def get_backend_for_host(self, host: str | None) -> Any:  # type: ignore[no-untyped-def]
        known = self.__dict__.setdefault("_backend_by_host", {})
        if host not in known:
            known[host] = lookup(self, host)
        return known[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def _remembered_method_names() -> None:
    from moto.core import responses

    names = responses.method_names_from_class
    # moto lists a handler class's methods (inspect.getmembers) on every call to find the action:
    # a fifth of a millisecond per request, for a list that never changes once the server is up.
    known: dict[type, list[str]] = {}

    def remembered(clazz):  # type: ignore[no-untyped-def]
        found = known.get(clazz)
        if found is None:
            found = known[clazz] = names(clazz)
        return found

    responses.method_names_from_class = remembered  # type: ignore[assignment]


def _track_only_mail() -> None:
    from moto.core import common_models

    def __new__(cls, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        instance = object.__new__(cls)
        if cls.__module__.split(".")[1] in _TRACKED_SERVICES:
            cls.instances_tracked.append(instance)
        return instance

    common_models.BaseModel.__new__ = staticmethod(__new__)  # type: ignore[method-assign]


def _key_of(table, op_type: str, op: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    if op_type != "Put":
        return op["Key"]
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


class _Undo:
    """What a transaction's writes changed, to put back if one of them fails."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, Any, Any, Any]] = []
        self.stream_lengths: dict[int, tuple[Any, int]] = {}

    def save(self, backend, table_name: str, key: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
        table = backend.get_table(table_name)
        hash_value, range_value = backend.get_keys_value(table, key)
        current = table.get_item(hash_value, range_value)
        self.items.append((table, hash_value, range_value, copy.deepcopy(current)))
        shard = table.stream_shard
        if shard is not None and id(shard) not in self.stream_lengths:
            self.stream_lengths[id(shard)] = (shard, len(shard.items))

    def restore(self) -> None:
        for table, hash_value, range_value, before in reversed(self.items):
            _bump(table, (hash_value, range_value))
            if range_value is not None:
                partition = table.items[hash_value]
                if before is None:
                    partition.pop(range_value, None)
                    if not partition:
                        table.items.pop(hash_value, None)
                else:
                    partition[range_value] = before
            elif before is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = before
        for shard, length in self.stream_lengths.values():
            del shard.items[length:]


def _isolated_transactions() -> None:
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.comparisons import get_filter_expression as condition_of
    from moto.dynamodb.models import DynamoDBBackend

    operations = ("ConditionCheck", "Put", "Delete", "Update")

    def transact_write_items(self, transact_items: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        targets: set[tuple[str, str]] = set()
        reasons: list[tuple[Any, Any, Any]] = []
        # Check: every condition against the items as they are, nothing written yet.
        for entry in transact_items:
            if len(entry) > 1:
                raise TransactWriteSingleOpException
            op_type, op = next(iter(entry.items()))
            old = None
            try:
                if op_type not in operations:
                    raise ValueError("Unsupported transaction operation")
                table_name = op["TableName"]
                key = _key_of(self.get_table(table_name), op_type, op)
                target = (str(table_name), str(dict(sorted(key.items()))))
                if target in targets:
                    raise MultipleTransactionsException()
                targets.add(target)
                current = self.get_item(table_name, key)
                condition = op.get("ConditionExpression")
                if condition is not None:
                    holds = condition_of(
                        condition,
                        op.get("ExpressionAttributeNames"),
                        op.get("ExpressionAttributeValues"),
                    ).expr(current)
                    if not holds:
                        if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                            old = current.to_json()["Attributes"]
                        raise ConditionalCheckFailed(item=old)
                reasons.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                raise
            except ConditionalCheckFailed as failed:
                reasons.append(("ConditionalCheckFailed", str(failed.message), old))
            except Exception as error:  # noqa: BLE001 - reported as the item's reason, as moto does
                reasons.append((type(error).__name__, str(error), None))
        if any(code is not None for code, _, _ in reasons):
            raise TransactionCanceledException(reasons)

        # Apply: all conditions held; a write that still fails undoes the ones before it.
        undo = _Undo()
        for index, entry in enumerate(transact_items):
            op_type, op = next(iter(entry.items()))
            if op_type == "ConditionCheck":
                continue
            table_name = op["TableName"]
            key = _key_of(self.get_table(table_name), op_type, op)
            common = {
                "condition_expression": op.get("ConditionExpression"),
                "expression_attribute_names": op.get("ExpressionAttributeNames"),
                "expression_attribute_values": op.get("ExpressionAttributeValues"),
            }
            undo.save(self, table_name, key)
            try:
                if op_type == "Put":
                    self.put_item(table_name, op["Item"], **common)
                elif op_type == "Delete":
                    self.delete_item(table_name, key, **common)
                else:
                    self.update_item(table_name, key, update_expression=op["UpdateExpression"], **common)
            except MockValidationException:
                undo.restore()
                raise
            except Exception as error:  # noqa: BLE001 - the transaction is cancelled for it
                undo.restore()
                failed = [(None, None, None)] * len(transact_items)
                failed[index] = (type(error).__name__, str(error), None)
                raise TransactionCanceledException(failed) from error

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _partition_queries() -> None:
    from moto.dynamodb.models.table import Table

    query_all = Table.query

    def query(self, hash_key, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        # moto's signature: (hash_key, range_comparison, range_objs, limit, exclusive_start_key,
        # scan_index_forward, projection_expressions, index_name=None, ...)
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or hash_key is None:
            return query_all(self, hash_key, *args, **kwargs)
        # moto filters the table's items by hash key after listing and sorting all of them; give it
        # the one partition to list. Requests to the table are served one at a time (emulator.py).
        everything = self.items
        self.items = {hash_key: everything[hash_key]} if hash_key in everything else {}
        try:
            return query_all(self, hash_key, *args, **kwargs)
        finally:
            self.items = everything

    Table.query = query  # type: ignore[method-assign]


_WRITES_LOGGED = 65536


def _bump(table, key: tuple[Any, Any] | None) -> None:  # type: ignore[no-untyped-def]
    """Counts a write to the table and logs the key it wrote (None: unknown, any item may have
    changed), so that an index partition kept in memory can follow the writes since it was read."""
    written = getattr(table, "_written", 0) + 1
    table._written = written
    log = table.__dict__.setdefault("_write_log", OrderedDict())
    log[written] = key
    while len(log) > _WRITES_LOGGED:
        log.popitem(last=False)


def _written_since(table, version: int) -> list[tuple[Any, Any]] | None:  # type: ignore[no-untyped-def]
    """The keys written after `version`, or None when the log no longer reaches back that far or
    a write's key is unknown."""
    written = getattr(table, "_written", 0)
    if version == written:
        return []
    log = table.__dict__.get("_write_log", {})
    if version + 1 not in log:
        return None
    keys = [log[v] for v in range(version + 1, written + 1)]
    return None if any(k is None for k in keys) else keys


def _stored_key(table, item_attrs: dict[str, Any]) -> tuple[Any, Any] | None:  # type: ignore[no-untyped-def]
    """The key an item is stored under in moto's table.items, or None if it has none."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    try:
        hash_value = DynamoType(item_attrs[table.hash_key_attr])
        range_value = DynamoType(item_attrs[table.range_key_attr]) if table.range_key_attr else None
    except (KeyError, TypeError):
        return None
    return hash_value, range_value


def _index_queries() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, GlobalSecondaryIndex, Table

    query_before = Table.query
    put_item, delete_item, update_item = Table.put_item, Table.delete_item, DynamoDBBackend.update_item

    # Every way an item changes: puts (batch writes and transactions put through here too),
    # deletes, and updates (which change the stored item in place).
    def put(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        try:
            return put_item(self, *args, **kwargs)
        finally:
            attrs = args[0] if args else kwargs.get("item_attrs")
            _bump(self, _stored_key(self, attrs) if isinstance(attrs, dict) else None)

    def delete(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        try:
            return delete_item(self, *args, **kwargs)
        finally:
            _bump(self, (args[0], args[1]) if len(args) >= 2 else None)

    def update(self, table_name, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        try:
            return update_item(self, table_name, *args, **kwargs)
        finally:
            key = args[0] if args else kwargs.get("key")
            try:
                table = self.get_table(table_name)
            except Exception:  # noqa: BLE001 - no such table: nothing was written
                table = None
            if table is not None:
                try:
                    written: tuple[Any, Any] | None = self.get_keys_value(table, key)
                except Exception:  # noqa: BLE001 - a key moto refused: log the write as unknown
                    written = None
                _bump(table, written)

    Table.put_item = put  # type: ignore[method-assign]
    Table.delete_item = delete  # type: ignore[method-assign]
    DynamoDBBackend.update_item = update  # type: ignore[method-assign]

    def index_state(self, index, attr: str, ranges: list[str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        """The index's entries by partition value, built once from the table and then kept up to
        date from its write log: only the items written since the last query are looked at."""

        def value_of(item) -> Any:  # type: ignore[no-untyped-def]
            value = item.attrs.get(attr)
            return value if value is not None and all(item.attrs.get(r) for r in ranges) else None

        states = self.__dict__.setdefault("_index_states", {})
        state = states.get(index.name)
        written = getattr(self, "_written", 0)
        changed = _written_since(self, state["version"]) if state is not None else None
        if state is None or changed is None:
            by_value: dict[Any, dict[Any, Any]] = {}
            values: dict[Any, Any] = {}
            for held in self.items.values():
                for item in held.values() if self.range_key_attr else (held,):
                    value = value_of(item)
                    if value is not None:
                        key = (item.hash_key, item.range_key)
                        by_value.setdefault(value, {})[key] = item
                        values[key] = value
            state = {"version": written, "by_value": by_value, "values": values, "sorted": {}}
            states[index.name] = state
            return state
        for key in changed:
            old = state["values"].pop(key, None)
            if old is not None:
                state["by_value"].get(old, {}).pop(key, None)
                state["sorted"].pop(old, None)
            held = self.items.get(key[0])
            item = held.get(key[1]) if isinstance(held, dict) else held
            value = value_of(item) if item is not None else None
            if value is not None:
                state["by_value"].setdefault(value, {})[key] = item
                state["values"][key] = value
                state["sorted"].pop(value, None)
        state["version"] = written
        return state

    def partition(self, index, hash_value):  # type: ignore[no-untyped-def]
        """The index partition's items in the index's order, sorted when first asked for after
        one of them changed: a query costs the size of its partition, not of the table."""
        attr = next(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
        ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
        state = index_state(self, index, attr, ranges)
        # The order moto's own query gives (index keys, then the table's keys).
        hash_attrs = [attr, self.hash_key_attr]
        if ranges:
            range_attrs = [*ranges, self.range_key_attr]
        elif isinstance(index, GlobalSecondaryIndex) and self.range_key_attr:
            range_attrs = [self.range_key_attr, self.range_key_attr]
        else:
            range_attrs = [self.hash_key_attr, self.range_key_attr]
        found = state["sorted"].get(hash_value)
        if found is None:
            members = list(state["by_value"].get(hash_value, {}).values())
            items = self.sorted_items(hash_attrs, range_attrs, members)
            positions = {(i.hash_key, i.range_key): n for n, i in enumerate(items)}
            if len(state["sorted"]) >= 4096:
                state["sorted"].clear()
            found = state["sorted"][hash_value] = (items, positions)
        return found[0], found[1], (hash_attrs, range_attrs)

    def query(  # type: ignore[no-untyped-def]
        self,
        hash_key,
        range_comparison,
        range_objs,
        limit,
        exclusive_start_key,
        scan_index_forward,
        projection_expressions,
        index_name=None,
        consistent_read=False,
        filter_expression=None,
        hash_key_conditions=None,
        range_key_conditions=None,
        **filter_kwargs: Any,
    ):
        args = (hash_key, range_comparison, range_objs, limit, exclusive_start_key)
        args += (scan_index_forward, projection_expressions)
        rest = {
            "index_name": index_name,
            "consistent_read": consistent_read,
            "filter_expression": filter_expression,
            "hash_key_conditions": hash_key_conditions,
            "range_key_conditions": range_key_conditions,
            **filter_kwargs,
        }
        index = next((i for i in self.all_indexes() if i.name == index_name), None) if index_name else None
        simple = (
            index is not None
            and hash_key is not None
            and not consistent_read
            and len(range_key_conditions or []) <= 1
            and not filter_kwargs
            and len([k for k in index.schema if k["KeyType"] == "HASH"]) == 1
            and len(hash_key_conditions or [None]) == 1
        )
        index_ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"] if index else []
        if range_comparison and len(index_ranges) != 1:
            simple = False
        if not simple:
            return query_before(self, *args, **rest)
        items, positions, (hash_attrs, range_attrs) = partition(self, index, hash_key)
        if range_comparison:
            # The partition is sorted by the range key; a key condition on it keeps a slice of it
            # (a due-date sweep: due_sk <= today). Found by moto's own comparison, item by item.
            attr = range_key_conditions[-1][0] if range_key_conditions else index_ranges[0]
            items = [
                i for i in items if i.attrs.get(attr) and i.attrs[attr].compare(range_comparison, range_objs)
            ]
            positions = {}
        step = 1 if scan_index_forward is not False else -1
        start = 0 if step == 1 else len(items) - 1
        if exclusive_start_key is not None:
            at = _position(self, positions, exclusive_start_key)
            if at is not None:
                start = at + step
            else:
                # The start item is gone: skip what comes before it, as moto does.
                while 0 <= start < len(items) and self._item_comes_before_dct(
                    items[start], exclusive_start_key, hash_attrs, range_attrs, scan_index_forward
                ):
                    start += step
        results: list[Any] = []
        size = 0
        last_evaluated_key = None
        at = start
        while 0 <= at < len(items):
            item = items[at]
            if len(results) == limit or size + item.size() > RESULT_SIZE_LIMIT:
                last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
                break
            results.append(item)
            size += item.size()
            at += step
        scanned = len(results)
        results = [index.project(r) for r in copy.deepcopy(results)]
        if filter_expression is not None:
            results = [r for r in results if filter_expression.expr(r)]
        if projection_expressions:
            results = [r.project(projection_expressions) for r in results]
        return results, scanned, last_evaluated_key

    Table.query = query  # type: ignore[method-assign]


def _position(table, positions, start_key):  # type: ignore[no-untyped-def]
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = start_key.get(table.hash_key_attr)
    if hash_value is None:
        return None
    range_value = start_key.get(table.range_key_attr) if table.range_key_attr else None
    key = (DynamoType(hash_value), DynamoType(range_value) if range_value is not None else None)
    return positions.get(key)


def _plain_results() -> None:
    import base64
    import json
    from datetime import datetime, timezone

    from moto.core.responses import ActionResult

    serialize = ActionResult.execute_result
    # The data plane's results are plain JSON already (items as dynamo_to_dict or to_json made
    # them), which moto's shape-driven serializer walks value by value: 85% of the emulator's time
    # when a person's records are read a page at a time, and a stream read of a few records cost
    # 20 ms. The serializer's one other effect, keeping only the output shape's members, is kept
    # at the top level (what moto adds beyond the shape is its own bookkeeping).
    plain = {
        "dynamodb": frozenset(
            {
                "Query",
                "Scan",
                "GetItem",
                "BatchGetItem",
                "PutItem",
                "UpdateItem",
                "DeleteItem",
                "BatchWriteItem",
                "TransactGetItems",
                "TransactWriteItems",
            }
        ),
        "dynamodbstreams": frozenset({"GetRecords"}),
    }

    def wire(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return base64.b64encode(value).decode("ascii")
        if isinstance(value, datetime):
            # moto's timestamps are naive UTC; the JSON protocols send epoch seconds.
            return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
        raise TypeError(f"{type(value).__name__} is not serializable")

    def execute_result(self, context):  # type: ignore[no-untyped-def]
        ops = plain.get(context.service_model.service_name)
        if not ops or context.operation_model.name not in ops or not isinstance(self.result, dict):
            return serialize(self, context)
        output = context.operation_model.output_shape
        members = output.members if output is not None else {}
        result = {k: v for k, v in self.result.items() if v is not None and k in members}
        version = context.service_model.metadata.get("jsonVersion", "1.0")
        headers = {"Content-Type": f"application/x-amz-json-{version}"}
        return 200, headers, json.dumps(result, default=wire, separators=(",", ":"))

    ActionResult.execute_result = execute_result  # type: ignore[method-assign]


def _cached_update_tokens() -> None:
    from moto.dynamodb.parsing.tokens import ExpressionTokenizer

    make_list = ExpressionTokenizer.make_list
    # An update expression is tokenized character by character in Python, two or three times per
    # UpdateItem (validation, then the write): a quarter of its cost. The few expressions the
    # functions send recur with every request; the tokens are only ever read, the list is copied.
    known: _Recent = _Recent(1024)

    def cached(cls, input_expression_str: str):  # type: ignore[no-untyped-def]
        return list(known.remember(input_expression_str, make_list))

    ExpressionTokenizer.make_list = classmethod(cached)  # type: ignore[method-assign, assignment]


def _cached_condition_lexing() -> None:
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser

    lex = ConditionExpressionParser._lex_condition_expression
    # The same for condition and filter expressions: lexed with a dozen regular expressions per
    # token, for every conditional write. The nodes are read, never changed; the deque is copied
    # because the parser consumes it.
    known: _Recent = _Recent(1024)

    def cached(self):  # type: ignore[no-untyped-def]
        return deque(known.remember(self.condition_expression, lambda _: lex(self)))

    ConditionExpressionParser._lex_condition_expression = cached  # type: ignore[method-assign]


class _NotPlain(Exception):
    """A tree holds something a node-by-node copy would share or lose: deep-copied instead."""


_IMMUTABLE = (str, int, float, bool, type(None), bytes)


def _copy_tree(node, parent=None):  # type: ignore[no-untyped-def]
    from moto.dynamodb.parsing.ast_nodes import Node

    new = object.__new__(type(node))
    state = {}
    for name, value in node.__dict__.items():
        if name == "parent":
            state[name] = parent
        elif name == "children" and isinstance(value, list):
            children = []
            for child in value:
                if isinstance(child, Node):
                    children.append(_copy_tree(child, new))
                elif isinstance(child, _IMMUTABLE):
                    children.append(child)
                else:
                    raise _NotPlain()
            state[name] = children
        elif isinstance(value, _IMMUTABLE):
            state[name] = value
        else:
            raise _NotPlain()
    new.__dict__ = state
    return new


def _update_trees_copied_by_shape() -> None:
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import Node
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    def tree_copy(value):  # type: ignore[no-untyped-def]
        # What moto's Validator copies before it rewrites the tree in place: a freshly parsed
        # expression, whose leaves are names, placeholders and operators.
        if isinstance(value, Node) and value.parent is None:
            try:
                return _copy_tree(value)
            except _NotPlain:
                pass
        return copy.deepcopy(value)

    validators.deepcopy = tree_copy  # type: ignore[attr-defined]

    make = UpdateExpressionParser.make
    known: _Recent = _Recent(1024)

    def cached(cls, expression_str: str):  # type: ignore[no-untyped-def]
        # The caller owns what it gets (moto normalizes and validates it in place).
        return tree_copy(known.remember(expression_str, make))

    UpdateExpressionParser.make = classmethod(cached)  # type: ignore[method-assign, assignment]


def _bounded_streams() -> None:
    from moto.dynamodb.models.table import StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    add = StreamShard.add

    def add_and_trim(self, old, new) -> None:  # type: ignore[no-untyped-def]
        add(self, old, new)
        excess = len(self.items) - _STREAM_KEEP
        if excess > 0:
            del self.items[:excess]
            self.starting_sequence_number += excess

    def get(self, start: int, quantity: int) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
        offset = max(start - self.starting_sequence_number, 0)
        return [record.to_json() for record in self.items[offset : offset + quantity]]

    StreamShard.add = add_and_trim  # type: ignore[method-assign]
    StreamShard.get = get  # type: ignore[method-assign]

    init = DynamoDBStreamsBackend.__init__

    def init_bounded(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[no-untyped-def]
        init(self, *args, **kwargs)
        self.shard_iterators = _Recent(_ITERATORS_KEPT)

    DynamoDBStreamsBackend.__init__ = init_bounded  # type: ignore[method-assign]


def _sorted_key_listing() -> None:
    from moto.s3.exceptions import MethodNotAllowed
    from moto.s3.models import FakeDeleteMarker, FakeTableStorageBucket, S3Backend
    from moto.s3.utils import _VersionedKeyStore

    # S3 calls are not serialized (large objects stream in parallel): the check-and-insert of a
    # new name must not interleave with another thread's.
    lock = threading.Lock()

    def names(store) -> list[str]:  # type: ignore[no-untyped-def]
        # Built on first use, so a store restored from saved state gets one too.
        found = store.__dict__.get("_sorted_names")
        if found is None:
            found = sorted(dict.keys(store))
            store.__dict__["_sorted_names"] = found
        return found  # type: ignore[no-any-return]

    def present(store, name: str) -> None:  # type: ignore[no-untyped-def]
        with lock:
            sorted_names = names(store)
            at = bisect_left(sorted_names, name)
            if at == len(sorted_names) or sorted_names[at] != name:
                sorted_names.insert(at, name)

    def absent(store, name: str) -> None:  # type: ignore[no-untyped-def]
        with lock:
            sorted_names = names(store)
            at = bisect_left(sorted_names, name)
            if at < len(sorted_names) and sorted_names[at] == name:
                del sorted_names[at]

    setitem, setlist, pop = _VersionedKeyStore.__setitem__, _VersionedKeyStore.setlist, _VersionedKeyStore.pop

    def set_and_index(self, key: str, value: Any) -> None:  # type: ignore[no-untyped-def]
        setitem(self, key, value)
        present(self, key)

    def setlist_and_index(self, key: str, list_: Any) -> None:  # type: ignore[no-untyped-def]
        setlist(self, key, list_)
        present(self, key)

    def pop_and_index(self, key: str) -> None:  # type: ignore[no-untyped-def]
        pop(self, key)
        absent(self, key)

    _VersionedKeyStore.__setitem__ = set_and_index  # type: ignore[method-assign]
    _VersionedKeyStore.setlist = setlist_and_index  # type: ignore[method-assign]
    _VersionedKeyStore.pop = pop_and_index  # type: ignore[method-assign]

    def list_objects(self, bucket, prefix, delimiter, marker, max_keys):  # type: ignore[no-untyped-def]
        # moto's own, except that it looks only at the names that start with the prefix.
        if isinstance(bucket, FakeTableStorageBucket):
            raise MethodNotAllowed()
        prefix = prefix or ""
        with lock:
            sorted_names = names(bucket.keys)
            end = start = bisect_left(sorted_names, prefix)
            while end < len(sorted_names) and sorted_names[end].startswith(prefix):
                end += 1
            candidates = sorted_names[start:end]
        key_results = []
        folder_results = set()
        for name in candidates:
            key = bucket.keys.get(name)
            if key is None:
                continue
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                folder_results.add(f"{prefix}{rest.split(delimiter)[0]}{delimiter}")
            elif not isinstance(key, FakeDeleteMarker):
                key_results.append(key)
        folders = sorted(folder_results)
        if marker:
            limit = self._pagination_tokens.get(marker) or marker
            key_results = self._get_results_from_token(key_results, limit)
        if max_keys is not None:
            key_results, is_truncated, next_marker = self._truncate_result(key_results, max_keys)
        else:
            is_truncated, next_marker = False, None
        return key_results, folders, is_truncated, next_marker

    S3Backend.list_objects = list_objects  # type: ignore[method-assign]


class _Recent(OrderedDict):  # type: ignore[type-arg]
    """A dict that forgets its oldest entries beyond `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)

    def remember(self, key: Any, make: Any) -> Any:
        """The value kept for `key`, made by `make(key)` and kept the first time."""
        value = self.get(key)
        if value is None:
            value = self[key] = make(key)
        return value


# ---------------------------------------------------------------------------------------------
# The meter (EMULATOR_METER=1, or PUT /_local/meter): what each caller asked of each service.
#
# moto's ConsumedCapacity is a constant, so DynamoDB's read and write units are computed here the
# way AWS bills them, from the sizes of the items each call touches:
# - item size: attribute names plus values (strings and binaries by their bytes, a number 1 byte
#   per two significant digits plus 1, booleans and nulls 1, a list or map 3 bytes plus 1 per
#   element plus its elements, a set its elements);
# - reads in 4 KB units: GetItem and each item of BatchGetItem rounded on its own, a Query or Scan
#   on the summed size of the items it read (before any filter, the index entry for an index),
#   never less than one unit; eventually consistent halves, TransactGetItems doubles;
# - writes in 1 KB units of the larger of the item before and after (a delete: before; a missing
#   item: one unit), each item of BatchWriteItem and TransactWriteItems on its own, a transaction
#   doubling every item, ConditionCheck included (prepare and commit); a failed condition still
#   costs the item's size, a cancelled transaction its prepare phase (one pass);
# - each global secondary index an item enters, leaves or changes in (its key, or what it
#   projects) is one more standard write of the index entry's size, two when the index key moves.
# S3 counts request bytes in and response bytes out, SES the recipients of each message (and keeps
# each message's tags, for replaying its events), SQS the messages received and empty receives.
# GET /_local/meter reports, DELETE /_local/meter starts again.

_METER_ON = os.environ.get("EMULATOR_METER") == "1"
_METER_MAIL_KEPT = 100_000
_READS = None  # threading.local(), made by metered()


class _Meter:
    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.enabled = _METER_ON
        self.calls: dict[tuple[str, str, str, str], dict[str, float]] = {}
        self.mail: list[dict[str, Any]] = []
        self.roles: dict[str, str] = {}

    def add(self, caller: str, service: str, operation: str, resource: str, **amounts: float) -> None:
        with self.lock:
            entry = self.calls.setdefault((caller, service, operation, resource), {"requests": 0})
            entry["requests"] += 1
            for name, amount in amounts.items():
                if amount:
                    entry[name] = entry.get(name, 0) + amount

    def add_mail(self, record: dict[str, Any]) -> None:
        with self.lock:
            if len(self.mail) < _METER_MAIL_KEPT:
                self.mail.append(record)

    def report(self) -> dict[str, Any]:
        with self.lock:
            calls = [
                {
                    "caller": caller,
                    "role": self.roles.get(caller, ""),
                    "service": service,
                    "operation": operation,
                    "resource": resource,
                    **amounts,
                }
                for (caller, service, operation, resource), amounts in sorted(self.calls.items())
            ]
            return {"enabled": self.enabled, "calls": calls, "mail": list(self.mail)}

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.mail.clear()


_METER = _Meter()


def meter_enabled() -> bool:
    return _METER.enabled


def meter_enable() -> None:
    _METER.enabled = True


def meter_report() -> dict[str, Any]:
    return _METER.report()


def meter_reset() -> None:
    _METER.reset()


def _number_size(text: str) -> int:
    digits = text.strip().lstrip("+-").split("e")[0].split("E")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def _value_size(value: Any) -> int:
    """The size AWS bills for one attribute value (a moto DynamoType or a wire-format dict)."""
    import base64

    if isinstance(value, dict):
        kind, raw = next(iter(value.items()))
    else:
        kind, raw = value.type, value.value
    if kind == "S":
        return len(str(raw).encode())
    if kind == "N":
        return _number_size(str(raw))
    if kind == "B":
        return len(raw) if isinstance(raw, bytes) else len(base64.b64decode(raw))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in raw)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in raw)
    if kind == "BS":
        return sum(len(b) if isinstance(b, bytes) else len(base64.b64decode(b)) for b in raw)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in raw.items())
    return len(str(raw).encode())


def item_size(attrs: dict[str, Any]) -> int:
    """The size AWS bills for an item: its attribute names and values."""
    return sum(len(name.encode()) + _value_size(value) for name, value in attrs.items())


def _units(size: int, unit: int) -> int:
    return max(1, -(-size // unit))


def _index_entries(table, attrs: dict[str, Any] | None) -> dict[str, tuple[str, str, int] | None]:  # type: ignore[no-untyped-def]
    """Per global secondary index: (its key, what it holds, its size) for this item, or None."""
    import json as _json

    entries: dict[str, tuple[str, str, int] | None] = {}
    for index in table.global_indexes or []:
        keys = [k["AttributeName"] for k in index.schema]
        if attrs is None or any(k not in attrs for k in keys):
            entries[index.name] = None
            continue
        projection = (index.projection or {}).get("ProjectionType", "ALL")
        names = set(keys) | {table.hash_key_attr} | ({table.range_key_attr} - {None})
        if projection == "ALL":
            names = set(attrs)
        elif projection == "INCLUDE":
            names |= set((index.projection or {}).get("NonKeyAttributes", []))
        entry = {n: attrs[n] for n in names if n in attrs}

        def wire(values: dict[str, Any]) -> str:
            return _json.dumps({n: v.to_json() for n, v in values.items()}, sort_keys=True, default=str)

        entries[index.name] = (wire({k: attrs[k] for k in keys}), wire(entry), item_size(entry))
    return entries


class _State:
    """An item as a write found or left it: its size and its index entries (copied, not live)."""

    def __init__(self, table, attrs: dict[str, Any] | None) -> None:  # type: ignore[no-untyped-def]
        self.size = item_size(attrs) if attrs is not None else None
        self.indexes = _index_entries(table, attrs)


def _index_writes(before: _State, after: _State) -> int:
    units = 0
    for name, old in before.indexes.items():
        new = after.indexes.get(name)
        if old is None and new is None:
            continue
        if old is None:
            units += _units(new[2], 1024)  # type: ignore[index]
        elif new is None:
            units += _units(old[2], 1024)
        elif old[0] != new[0]:
            units += _units(old[2], 1024) + _units(new[2], 1024)
        elif old[1] != new[1]:
            units += _units(max(old[2], new[2]), 1024)
    return units


class _DynamoCall:
    """One DynamoDB request's capacity: items looked at before it runs, and after."""

    def __init__(self, backend, op: str, body: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
        self.backend = backend
        self.op = op
        self.body = body
        # (table, key, kind, before): kind is read, write or check.
        self.touched: list[tuple[Any, dict[str, Any], str, _State, bool]] = []
        if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
            table = backend.get_table(body["TableName"])
            key = _key_of(table, "Put" if op == "PutItem" else "Key", body)
            kind = "read" if op == "GetItem" else "write"
            self._touch(table, key, kind, bool(body.get("ConsistentRead")))
        elif op == "BatchGetItem":
            for name, spec in (body.get("RequestItems") or {}).items():
                table = backend.get_table(name)
                for key in spec.get("Keys", []):
                    self._touch(table, key, "read", bool(spec.get("ConsistentRead")))
        elif op == "BatchWriteItem":
            for name, requests in (body.get("RequestItems") or {}).items():
                table = backend.get_table(name)
                for request in requests:
                    if "PutRequest" in request:
                        self._touch(table, _key_of(table, "Put", request["PutRequest"]), "write", False)
                    elif "DeleteRequest" in request:
                        self._touch(table, request["DeleteRequest"]["Key"], "write", False)
        elif op == "TransactGetItems":
            for entry in body.get("TransactItems") or []:
                get = entry.get("Get") or {}
                self._touch(backend.get_table(get["TableName"]), get["Key"], "read", True)
        elif op == "TransactWriteItems":
            for entry in body.get("TransactItems") or []:
                op_type, spec = next(iter(entry.items()))
                table = backend.get_table(spec["TableName"])
                kind = "check" if op_type == "ConditionCheck" else "write"
                self._touch(table, _key_of(table, op_type, spec), kind, False)

    def _touch(self, table, key: dict[str, Any], kind: str, consistent: bool) -> None:  # type: ignore[no-untyped-def]
        self.touched.append((table, key, kind, _State(table, self._attrs(table, key)), consistent))

    def _attrs(self, table, key: dict[str, Any]) -> dict[str, Any] | None:  # type: ignore[no-untyped-def]
        hash_value, range_value = self.backend.get_keys_value(table, key)
        item = table.get_item(hash_value, range_value)
        return dict(item.attrs) if item is not None else None

    def units(self, succeeded: bool, read_sizes: list[int] | None) -> dict[str, float]:
        op, body = self.op, self.body
        if op in ("Query", "Scan"):
            consistent = bool(body.get("ConsistentRead"))
            units = _units(sum(read_sizes or []), 4096)
            return {"read_units": units if consistent else units / 2}
        read = write = index = 0.0
        transactional = op.startswith("Transact")
        for table, key, kind, before, consistent in self.touched:
            if kind == "read":
                units = _units(before.size or 0, 4096)
                read += units * 2 if transactional else (units if consistent else units / 2)
                continue
            if not succeeded:
                # A failed condition costs the item as found; a cancelled transaction one pass.
                write += _units(before.size or 0, 1024)
                continue
            after = before if kind == "check" else _State(table, self._attrs(table, key))
            units = _units(max(before.size or 0, after.size or 0), 1024)
            write += units * 2 if transactional else units
            index += _index_writes(before, after)
        return {"read_units": read, "write_units": write, "index_write_units": index}


def _dynamodb_backend(account: str, region: str):  # type: ignore[no-untyped-def]
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[account][region]


def _caller(environ) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """(who, their account, the region) of a request."""
    from iam_guard import DEVELOPER_KEY, find_session, signer_of
    from moto.core import DEFAULT_ACCOUNT_ID

    signer = signer_of(environ)
    region = (signer.region if signer else None) or os.environ.get("AWS_REGION", "us-east-1")
    if signer is None:
        return "anonymous", DEFAULT_ACCOUNT_ID, region
    if signer.key == DEVELOPER_KEY:
        return "developer", DEFAULT_ACCOUNT_ID, region
    session = find_session(signer.key)
    if session is None:
        return signer.key, DEFAULT_ACCOUNT_ID, region
    _METER.roles.setdefault(signer.key, str(session.role_arn).rsplit("/", 1)[-1])
    return signer.key, session.account_id, region


def _s3_operation(environ) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """(operation, bucket) of an S3 request, named as AWS bills it."""
    import urllib.parse

    from iam_guard import GuardRequest, Signer, _bucket_and_key

    request = GuardRequest(environ, Signer("", None, None), "")
    bucket, key = _bucket_and_key(request)
    method, has = request.method, request.has
    if key:
        if method == "GET":
            return ("ListParts" if has("uploadId") else "GetObject"), bucket
        if method == "HEAD":
            return "HeadObject", bucket
        if method == "PUT":
            if has("partNumber"):
                return "UploadPart", bucket
            if "HTTP_X_AMZ_COPY_SOURCE" in environ:
                return "CopyObject", bucket
            for sub in ("tagging", "acl", "retention", "legal-hold"):
                if has(sub):
                    return f"PutObject:{sub}", bucket
            return "PutObject", bucket
        if method == "POST":
            if has("uploads"):
                return "CreateMultipartUpload", bucket
            if has("uploadId"):
                return "CompleteMultipartUpload", bucket
            return "PostObject", bucket
        if method == "DELETE":
            return ("AbortMultipartUpload" if has("uploadId") else "DeleteObject"), bucket
    if method == "POST" and has("delete"):
        return "DeleteObjects", bucket
    if method in ("GET", "HEAD"):
        if has("versions"):
            return "ListObjectVersions", bucket
        if has("uploads"):
            return "ListMultipartUploads", bucket
        if request.param("list-type") == "2":
            return "ListObjectsV2", bucket
        subresources = [n for n in request.query if n not in ("prefix", "delimiter", "max-keys", "encoding-type")]
        if subresources:
            return f"GetBucket:{urllib.parse.quote(subresources[0])}", bucket
        return ("HeadBucket" if method == "HEAD" else "ListObjects"), bucket
    return f"{method.title()}Bucket", bucket


_DIRECT_TARGETS = {
    "DynamoDB_20120810": ("moto.dynamodb.responses", "DynamoHandler"),
    "DynamoDBStreams_20120810": ("moto.dynamodbstreams.responses", "DynamoDBStreamsHandler"),
    "AmazonSQS": ("moto.sqs.responses", "SQSResponse"),
}


def direct_json_protocols(app):  # type: ignore[no-untyped-def]
    """WSGI middleware: a call in a JSON protocol is handed to its service's handler directly
    (what moto's Flask view for the path would call, with the same request class and the same
    conversion of its answer); anything else goes on to moto's app."""
    import importlib

    from botocore.exceptions import ClientError
    from moto.core.request import Request
    from werkzeug.wrappers import Response

    class ServerRequest(Request):
        from_wsgi_server = True

    handlers = {
        prefix: getattr(importlib.import_module(module), name)
        for prefix, (module, name) in _DIRECT_TARGETS.items()
    }

    def call(environ, start_response):  # type: ignore[no-untyped-def]
        handler = None
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/":
            handler = handlers.get(environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[0])
        if handler is None:
            return app(environ, start_response)
        request = ServerRequest(environ)
        try:
            result = handler.dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        return Response(response=content, status=status, headers=headers)(environ, start_response)

    return call


def metered(app):  # type: ignore[no-untyped-def]
    """WSGI middleware: counts each AWS call while the meter is on. It sits inside the serializing
    lock, so the items a DynamoDB call is measured against are the ones the call sees."""
    import json as _json
    import threading

    global _READS
    _READS = threading.local()
    reads = _READS

    def call(environ, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        if not _METER.enabled or path.startswith(("/moto-api", "/_local/")):
            return app(environ, start_response)
        forwarded = []

        def forward(environ, start_response):  # type: ignore[no-untyped-def]
            forwarded.append(True)
            return app(environ, start_response)

        try:
            return _metered_call(forward, environ, start_response, reads, _json)
        except Exception as err:  # noqa: BLE001 - the meter never costs a request its answer
            if forwarded:
                raise
            _warn(f"a request not measured ({type(err).__name__}: {err})")
            return app(environ, start_response)

    return call


def _warn(message: str) -> None:
    import sys

    print(f"meter: {message}", file=sys.stderr)


def _json_of(request) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The request's JSON body, or nothing when it has none (moto answers a malformed one)."""
    try:
        return request.json()
    except ValueError:
        return {}


def _metered_call(app, environ, start_response, reads, _json):  # type: ignore[no-untyped-def]
    from iam_guard import GuardRequest, Signer

    status: list[str] = []

    def remember(code, headers, exc_info=None):  # type: ignore[no-untyped-def]
        status.append(code)
        return start_response(code, headers, exc_info) if exc_info else start_response(code, headers)

    def succeeded() -> bool:
        return bool(status) and status[0].startswith("2")

    try:
        caller, account, region = _caller(environ)
    except Exception as err:  # noqa: BLE001 - counted as nobody rather than not served
        caller, account, region = "unknown", "", ""
        _warn(f"no caller ({type(err).__name__})")
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    request = GuardRequest(environ, Signer("", region, None), account)

    if target.startswith("DynamoDB_"):
        op = target.split(".", 1)[1]
        body = _json_of(request)
        measured = None
        try:
            measured = _DynamoCall(_dynamodb_backend(account, region), op, body)
        except Exception as err:  # noqa: BLE001 - a bad request is moto's to refuse
            _warn(f"DynamoDB {op} not measured ({type(err).__name__}: {err})")
        if op in ("Query", "Scan"):
            reads.sizes = []
        try:
            answer = list(app(environ, remember))
        finally:
            read_sizes = getattr(reads, "sizes", None)
            reads.sizes = None
        units: dict[str, float] = {}
        if measured is not None:
            try:
                units = measured.units(succeeded(), read_sizes)
            except Exception as err:  # noqa: BLE001
                _warn(f"DynamoDB {op} not measured ({type(err).__name__}: {err})")
        tables = sorted({str(t.name) for t, *_ in measured.touched}) if measured is not None else []
        resource = ",".join(tables) or str(body.get("TableName", ""))
        _METER.add(caller, "dynamodb", op, resource, **units)
        return answer

    if target.startswith("DynamoDBStreams_"):
        answer = list(app(environ, remember))
        _METER.add(caller, "dynamodbstreams", target.split(".", 1)[1], "")
        return answer

    query_protocol = "Action=" in environ.get("QUERY_STRING", "") or environ.get(
        "CONTENT_TYPE", ""
    ).startswith("application/x-www-form-urlencoded")
    if target.startswith("AmazonSQS.") or (not target and query_protocol):
        from iam_guard import signer_of

        if target:
            op, params = target.split(".", 1)[1], _json_of(request)
            queue_url = str(params.get("QueueUrl", ""))
            entries = len(params.get("Entries") or [])
        else:
            form = request.form()
            op = (form.get("Action") or ["Unknown"])[0]
            queue_url = (form.get("QueueUrl") or [""])[0]
            entries = sum(1 for name in form if name.endswith(".Id"))
        signer = signer_of(environ)
        named = signer.service if signer is not None and signer.service else "query"
        service = "sqs" if target or queue_url or named == "sqs" else named
        answer = list(app(environ, remember))
        amounts: dict[str, float] = {}
        if service == "sqs" and op == "ReceiveMessage" and succeeded():
            raw = b"".join(answer)
            if target:
                received = len((_json.loads(raw or b"{}") or {}).get("Messages") or [])
            else:
                received = raw.count(b"<Message>")
            amounts = {"messages": received, "empty": 0 if received else 1}
        elif service == "sqs" and op in ("SendMessage", "DeleteMessage"):
            amounts = {"messages": 1}
        elif service == "sqs" and op in ("SendMessageBatch", "DeleteMessageBatch"):
            amounts = {"messages": entries}
        _METER.add(caller, service, op, queue_url.rsplit("/", 1)[-1], **amounts)
        return answer

    if target:
        service = target.split("_", 1)[0].split(".", 1)[0]
        service = {"TrentService": "kms"}.get(service, service.lower())
        key = str(_json_of(request).get("KeyId", "")) if service == "kms" else ""
        answer = list(app(environ, remember))
        _METER.add(caller, service, target.split(".", 1)[-1], key)
        return answer

    path = environ.get("PATH_INFO", "")
    if path.startswith("/v2/email"):
        body = _json_of(request) if request.method == "POST" else {}
        answer = list(app(environ, remember))
        if path.rstrip("/") == "/v2/email/outbound-emails" and request.method == "POST":
            destination = body.get("Destination") or {}
            recipients = [
                *destination.get("ToAddresses", []),
                *destination.get("CcAddresses", []),
                *destination.get("BccAddresses", []),
            ]
            _METER.add(caller, "sesv2", "SendEmail", "", messages=len(recipients), bytes_in=len(request.body))
            if succeeded():
                try:
                    message_id = str((_json.loads(b"".join(answer)) or {}).get("MessageId", ""))
                except ValueError:
                    message_id = ""
                tags = {t.get("Name", ""): t.get("Value", "") for t in body.get("EmailTags", []) or []}
                _METER.add_mail({"caller": caller, "message_id": message_id, "to": recipients, "tags": tags})
        else:
            _METER.add(caller, "sesv2", f"{request.method} {path}", "")
        return answer

    # S3: its requests run concurrently and may stream, so the body is counted as it goes.
    op, bucket = _s3_operation(environ)
    length = environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH") or environ.get("CONTENT_LENGTH") or "0"
    bytes_in = int(length) if str(length).strip().isdigit() else 0
    response = app(environ, remember)

    def counted():  # type: ignore[no-untyped-def]
        sent = 0
        try:
            for chunk in response:
                sent += len(chunk)
                yield chunk
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
            _METER.add(caller, "s3", op, bucket, bytes_in=bytes_in, bytes_out=sent)

    return counted()


def _metered_reads() -> None:
    """Query and Scan tell the meter the size of every item they read, before filters and
    projections (what AWS bills), when the meter asks for it."""
    from moto.dynamodb.models.table import Table

    query = Table.query
    scan = Table.scan

    def measured_query(  # type: ignore[no-untyped-def]
        self,
        hash_key,
        range_comparison,
        range_objs,
        limit,
        exclusive_start_key,
        scan_index_forward,
        projection_expressions,
        index_name=None,
        consistent_read=False,
        filter_expression=None,
        **kwargs: Any,
    ):
        sizes = getattr(_READS, "sizes", None) if _READS is not None else None
        if sizes is None:
            return query(
                self, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                scan_index_forward, projection_expressions, index_name, consistent_read,
                filter_expression, **kwargs,
            )
        items, scanned, last = query(
            self, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
            scan_index_forward, None, index_name, consistent_read, None, **kwargs,
        )
        sizes.extend(item_size(item.attrs) for item in items)
        if filter_expression is not None:
            items = [item for item in items if filter_expression.expr(item)]
        if projection_expressions:
            items = [item.project(projection_expressions) for item in items]
        return items, scanned, last

    def measured_scan(  # type: ignore[no-untyped-def]
        self,
        filters,
        limit,
        exclusive_start_key,
        filter_expression=None,
        index_name=None,
        consistent_read=False,
        projection_expression=None,
        **kwargs: Any,
    ):
        sizes = getattr(_READS, "sizes", None) if _READS is not None else None
        if sizes is None or filters:
            result = scan(
                self, filters, limit, exclusive_start_key, filter_expression, index_name,
                consistent_read, projection_expression, **kwargs,
            )
            if sizes is not None:
                sizes.extend(item_size(item.attrs) for item in result[0])
            return result
        items, scanned, last = scan(
            self, filters, limit, exclusive_start_key, None, index_name, consistent_read, None, **kwargs
        )
        sizes.extend(item_size(item.attrs) for item in items)
        if filter_expression is not None:
            items = [item for item in items if filter_expression.expr(item)]
        if projection_expression:
            items = [item.project(projection_expression) for item in items]
        return items, scanned, last

    Table.query = measured_query  # type: ignore[method-assign]
    Table.scan = measured_scan  # type: ignore[method-assign]
