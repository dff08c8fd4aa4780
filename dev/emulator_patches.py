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
  table for each Query; for a GSI it still does (the sweep's hourly query is the only one).
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
