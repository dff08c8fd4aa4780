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
- A Query on an index by its partition key reads that partition, sorted once and kept until the
  table is next written, and starts a page at its ExclusiveStartKey by lookup. moto walks and
  sorts every item of the table and then skips item by item to the start key, for every page:
  reading a person's million records a page at a time cost O(table) per page.
- The reads that return items (Query, Scan, GetItem, BatchGetItem) are written out as the JSON
  they already are, instead of through moto's serializer, which walks every value against the
  API's shapes (85% of the emulator's time while an export read a million records).
- No line per request in the log (EMULATOR_ACCESS_LOG=1 brings it back): under load, writing it
  took a fifth of the emulator's CPU. Errors, and the IAM guard's refusals, are still logged.
- The backend serving a host is looked up once per host, not matched against every service's
  URL patterns on each request.
- The stream keeps its newest records (EMULATOR_STREAM_KEEP, default 20,000), like DynamoDB
  Streams' retention window: older records are trimmed, and an iterator older than the trim
  horizon reads from the oldest record kept. Used shard iterators are forgotten after a while
  (a reader moves to the next one each GetRecords; AWS expires them after 15 minutes).
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from typing import Any

_TRACKED_SERVICES = frozenset({"ses", "sesv2"})
_STREAM_KEEP = int(os.environ.get("EMULATOR_STREAM_KEEP", "20000"))
_ITERATORS_KEPT = 4096


def apply() -> None:
    _quiet_access_log()
    _remembered_backends()
    _track_only_mail()
    _isolated_transactions()
    _partition_queries()
    _index_queries()
    _plain_item_reads()
    _bounded_streams()


def _quiet_access_log() -> None:
    import logging

    if os.environ.get("EMULATOR_ACCESS_LOG") != "1":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _remembered_backends() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    lookup = DomainDispatcherApplication.get_backend_for_host

    def get_backend_for_host(self, host: str | None) -> Any:  # type: ignore[no-untyped-def]
        known = self.__dict__.setdefault("_backend_by_host", {})
        if host not in known:
            known[host] = lookup(self, host)
        return known[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


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
            _bump(table)
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


def _bump(table) -> None:  # type: ignore[no-untyped-def]
    table._written = getattr(table, "_written", 0) + 1


def _index_queries() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, GlobalSecondaryIndex, Table

    query_before = Table.query
    put_item, delete_item, update_item = Table.put_item, Table.delete_item, DynamoDBBackend.update_item

    # Every way an item changes: puts (batch writes and transactions put through here too),
    # deletes, and updates (which change the stored item in place).
    def put(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        _bump(self)
        return put_item(self, *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        _bump(self)
        return delete_item(self, *args, **kwargs)

    def update(self, table_name, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        try:
            return update_item(self, table_name, *args, **kwargs)
        finally:
            _bump(self.get_table(table_name))

    Table.put_item = put  # type: ignore[method-assign]
    Table.delete_item = delete  # type: ignore[method-assign]
    DynamoDBBackend.update_item = update  # type: ignore[method-assign]

    def partition(self, index, hash_value):  # type: ignore[no-untyped-def]
        """The index partition's items in the index's order, kept until the table is written."""
        attr = next(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
        ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
        cache = self.__dict__.setdefault("_index_partitions", {})
        written = getattr(self, "_written", 0)
        found = cache.get((index.name, hash_value))
        if found is not None and found[0] == written:
            return found[1], found[2], found[3]
        if len(cache) > 256 or (found is None and any(w != written for w, *_ in cache.values())):
            cache.clear()
        items = []
        for held in self.items.values():
            for item in held.values() if self.range_key_attr else (held,):
                value = item.attrs.get(attr)
                if value is not None and value == hash_value and all(item.attrs.get(r) for r in ranges):
                    items.append(item)
        # The order moto's own query gives (index keys, then the table's keys).
        hash_attrs = [attr, self.hash_key_attr]
        if ranges:
            range_attrs = [*ranges, self.range_key_attr]
        elif isinstance(index, GlobalSecondaryIndex) and self.range_key_attr:
            range_attrs = [self.range_key_attr, self.range_key_attr]
        else:
            range_attrs = [self.hash_key_attr, self.range_key_attr]
        items = self.sorted_items(hash_attrs, range_attrs, items)
        positions = {(i.hash_key, i.range_key): n for n, i in enumerate(items)}
        cache[(index.name, hash_value)] = (written, items, positions, (hash_attrs, range_attrs))
        return items, positions, (hash_attrs, range_attrs)

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
            and not range_comparison
            and not range_key_conditions
            and not filter_kwargs
            and len([k for k in index.schema if k["KeyType"] == "HASH"]) == 1
            and len(hash_key_conditions or [None]) == 1
        )
        if not simple:
            return query_before(self, *args, **rest)
        items, positions, (hash_attrs, range_attrs) = partition(self, index, hash_key)
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


def _plain_item_reads() -> None:
    import base64
    import json
    from datetime import datetime

    from moto.dynamodb.responses import DynamoResult

    serialize = DynamoResult.execute_result
    # The reads that carry items. Their results are plain JSON already (dynamo_to_dict), which
    # moto's shape-driven serializer walks value by value: 85% of the emulator's time when a
    # person's records are read a page at a time.
    reads = frozenset({"Query", "Scan", "GetItem", "BatchGetItem"})

    def wire(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return base64.b64encode(value).decode("ascii")
        if isinstance(value, datetime):
            return value.timestamp()
        raise TypeError(f"{type(value).__name__} is not serializable")

    def execute_result(self, context):  # type: ignore[no-untyped-def]
        if context.operation_model.name not in reads or not isinstance(self.result, dict):
            return serialize(self, context)
        result = {k: v for k, v in self.result.items() if v is not None}
        version = context.service_model.metadata.get("jsonVersion", "1.0")
        headers = {"Content-Type": f"application/x-amz-json-{version}"}
        return 200, headers, json.dumps(result, default=wire, separators=(",", ":"))

    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]


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


class _Recent(OrderedDict):  # type: ignore[type-arg]
    """A dict that forgets its oldest entries beyond `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)
