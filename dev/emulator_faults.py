"""Faults on purpose: the emulator answers a share of the functions' AWS calls with the errors AWS
really returns under stress, in each protocol's own wire format, so that retries, redelivery and
dead-letter queues are exercised locally (`make chaos`, tests/emulator_faults.rs, tests/chaos.rs).

EMULATOR_FAULTS=0.3 fails that share of DynamoDB, DynamoDB Streams, SES (v2, and v1's query API),
SQS and S3 calls, chosen at random but reproducibly: EMULATOR_FAULTS_SEED (else a random seed,
printed at start and in the report) seeds one generator, drawn once per eligible call in the
order calls arrive, so the same seed gives the same sequence of decisions. Only calls signed by
an assumed role (the functions) are eligible, and, with EMULATOR_FAULTS_PUMP=1, the event pump's
(the developer key with the SDK application name `devstack-pump`); never the developer key
otherwise (tests, provisioning, the mailbox), never unsigned calls, never /_local/ or /moto-api.
EMULATOR_FAULTS_ONLY=service:Operation,... (or just service) narrows the eligible calls.

A fault is decided before the call reaches the IAM guard, the serializing lock or moto: nothing
is written, as when AWS throttles a call. (AWS may also fail a call that did take effect, a 500
after a write; that ambiguity is not played here.)

GET /_local/faults reports {"rate", "seed", "pump", "only", "calls": eligible calls seen,
"injected": {service: {operation: n}}, "recent": the last 500 faults as [service, operation, code],
"callers": {role or "pump": {"calls", "faults"}}};
PUT with a JSON object of rate, seed, pump and only changes
them (the counts go on; a new seed restarts the sequence); DELETE sets the counts to zero.

The errors, as AWS sends them and as the SDK for Rust classifies them (aws-runtime's
THROTTLING_ERRORS, and any 5xx as transient):
- DynamoDB (awsJson1_0): ProvisionedThroughputExceededException and ThrottlingException (400),
  InternalServerError (500); a TransactWriteItems may also be cancelled with a TransactionConflict
  reason for one of its items (TransactionCanceledException, 400: not retried by the SDK, for the
  caller to judge by its reasons).
- DynamoDB Streams (awsJson1_0): LimitExceededException (400), InternalServerError (500).
- SQS (awsJson1_0 with the query-compatible x-amzn-query-error header the SDK reads its code from,
  or the query protocol's XML): RequestThrottled and ThrottlingException (400), InternalError (500).
- SES v2 (restJson1, the code in x-amzn-ErrorType): TooManyRequestsException (429), InternalFailure
  (500); SES v1 (query): Throttling "Maximum sending rate exceeded." (400).
- S3 (restXml): SlowDown (503), InternalError (500).
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
import threading
import uuid
from collections import deque
from typing import Any, Callable, Iterable

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

PUMP_APP_NAME = "devstack-pump"
SERVICES = ("dynamodb", "dynamodbstreams", "sqs", "sesv2", "ses", "s3")


class Fault:
    """One error answer: HTTP status, the error code, and how it is written."""

    def __init__(self, status: str, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


_DYNAMODB = [
    Fault(
        "400 Bad Request",
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    Fault(
        "400 Bad Request",
        "ThrottlingException",
        "Throughput exceeds the current capacity of your table or index.",
    ),
    Fault("500 Internal Server Error", "InternalServerError", "Internal server error"),
]
_TRANSACTION_CONFLICT = Fault(
    "400 Bad Request",
    "TransactionCanceledException",
    "Transaction cancelled, please refer cancellation reasons for specific reasons",
)
_STREAMS = [
    Fault("400 Bad Request", "LimitExceededException", "Rate exceeded for shard"),
    Fault("500 Internal Server Error", "InternalServerError", "Internal server error"),
]
_SQS = [
    Fault("400 Bad Request", "RequestThrottled", "Request is throttled."),
    Fault("400 Bad Request", "ThrottlingException", "Rate exceeded"),
    Fault("500 Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
]
_SESV2 = [
    Fault("429 Too Many Requests", "TooManyRequestsException", "Too many requests have been made to the operation."),
    Fault(
        "500 Internal Server Error",
        "InternalFailure",
        "The request processing has failed because of an unknown error.",
    ),
]
_SES_V1 = [Fault("400 Bad Request", "Throttling", "Maximum sending rate exceeded.")]
_S3 = [
    Fault("503 Slow Down", "SlowDown", "Please reduce your request rate."),
    Fault("500 Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
]


def _env_rate() -> float:
    raw = os.environ.get("EMULATOR_FAULTS", "0").strip() or "0"
    rate = float(raw)
    if not 0.0 <= rate <= 1.0:
        raise SystemExit(f"EMULATOR_FAULTS={raw!r}: a share between 0 and 1")
    return rate


def _parse_only(raw: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (raw or "").split(",") if part.strip())


class Call:
    """What an eligible call is: its service, operation and protocol (how its error is written)."""

    def __init__(self, service: str, operation: str, protocol: str) -> None:
        self.service, self.operation, self.protocol = service, operation, protocol
        # The role that signed it (its name), or "pump".
        self.caller = ""


def classify(environ: Environ, signer_service: str | None) -> Call | None:
    """The call's service and operation, or None for anything that is never failed on purpose
    (IAM, STS, KMS, SNS, the emulator's own paths)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    path = environ.get("PATH_INFO", "") or "/"
    if target:
        prefix, _, operation = target.partition(".")
        if prefix.startswith("DynamoDBStreams_"):
            return Call("dynamodbstreams", operation, "json")
        if prefix.startswith("DynamoDB_"):
            return Call("dynamodb", operation, "json")
        if prefix == "AmazonSQS":
            return Call("sqs", operation, "sqs-json")
        return None
    if path.startswith("/v2/email"):
        return Call("sesv2", _sesv2_operation(environ), "rest-json")
    query = environ.get("QUERY_STRING", "")
    form = environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded")
    if "Action=" in query or form:
        if signer_service == "sqs":
            return Call("sqs", _query_action(environ), "query")
        if signer_service in ("ses", "email"):
            return Call("ses", _query_action(environ), "query")
        return None
    if signer_service in (None, "s3"):
        return Call("s3", _s3_operation(environ), "s3")
    return None


def _sesv2_operation(environ: Environ) -> str:
    path = (environ.get("PATH_INFO", "") or "/").rstrip("/")
    method = environ.get("REQUEST_METHOD", "GET").upper()
    if method == "POST" and path == "/v2/email/outbound-emails":
        return "SendEmail"
    return f"{method} {path.split('/')[3] if path.count('/') >= 3 else path}"


def _query_action(environ: Environ) -> str:
    import urllib.parse

    params = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" not in params and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        body = _read_body(environ)
        params = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    return (params.get("Action") or ["Unknown"])[0]


def _s3_operation(environ: Environ) -> str:
    try:
        # The meter's names for S3's operations, as AWS bills them.
        from emulator_patches import _s3_operation as named

        return str(named(environ)[0])
    except Exception:  # noqa: BLE001 - an operation without a name is still an S3 call
        return environ.get("REQUEST_METHOD", "GET").upper()


def _read_body(environ: Environ) -> bytes:
    """The request body, read once and put back for whoever reads it next."""
    stream = environ.get("wsgi.input")
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    if stream is None:
        body = b""
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    elif length.isdigit():
        body = stream.read(int(length))
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _transaction_size(environ: Environ) -> int:
    try:
        items = json.loads(_read_body(environ) or b"{}").get("TransactItems")
        return max(1, len(items)) if isinstance(items, list) else 1
    except (ValueError, AttributeError):
        return 1


def _request_id() -> str:
    return uuid.uuid4().hex.upper()[:20]


def respond(environ: Environ, start_response: StartResponse, call: Call, fault: Fault, rng_pick: int) -> list[bytes]:
    """`fault` written as the call's protocol writes its errors."""
    request_id = _request_id()
    method = environ.get("REQUEST_METHOD", "GET").upper()
    if call.protocol == "json":
        body: dict[str, Any] = {"__type": f"com.amazonaws.dynamodb.v20120810#{fault.code}", "message": fault.message}
        if fault.code == "TransactionCanceledException":
            # One reason per item, in order: the conflicting one is TransactionConflict, the
            # others None (AWS reports every item's reason).
            size = _transaction_size(environ)
            reasons = [{"Code": "None"} for _ in range(size)]
            reasons[rng_pick % size] = {
                "Code": "TransactionConflict",
                "Message": "Transaction is ongoing for the item",
            }
            codes = ", ".join(r["Code"] for r in reasons)
            body = {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "CancellationReasons": reasons,
                "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
            }
        headers = [("x-amzn-RequestId", request_id)]
        return _json(start_response, fault.status, body, "application/x-amz-json-1.0", headers)
    if call.protocol == "sqs-json":
        kind = "Receiver" if fault.status.startswith("5") else "Sender"
        body = {"__type": f"com.amazonaws.sqs#{fault.code}", "message": fault.message}
        headers = [("x-amzn-RequestId", request_id), ("x-amzn-query-error", f"{fault.code};{kind}")]
        return _json(start_response, fault.status, body, "application/x-amz-json-1.0", headers)
    if call.protocol == "rest-json":
        headers = [("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", fault.code)]
        return _json(start_response, fault.status, {"message": fault.message}, "application/json", headers)
    if call.protocol == "query":
        kind = "Receiver" if fault.status.startswith("5") else "Sender"
        payload = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{fault.code}</Code>"
            f"<Message>{fault.message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        start_response(fault.status, [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))])
        return [payload]
    payload = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{fault.code}</Code><Message>{fault.message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
    ).encode()
    headers = [
        ("Content-Type", "application/xml"),
        ("Content-Length", "0" if method == "HEAD" else str(len(payload))),
        ("x-amz-request-id", request_id),
        ("x-amz-id-2", request_id),
    ]
    start_response(fault.status, headers)
    return [] if method == "HEAD" else [payload]


def _json(
    start_response: StartResponse, status: str, body: dict[str, Any], content_type: str, headers: list[tuple[str, str]]
) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload))), *headers])
    return [payload]


def menu(call: Call) -> list[Fault]:
    if call.service == "dynamodb":
        return [*_DYNAMODB, _TRANSACTION_CONFLICT] if call.operation == "TransactWriteItems" else _DYNAMODB
    if call.service == "dynamodbstreams":
        return _STREAMS
    if call.service == "sqs":
        return _SQS
    if call.service == "sesv2":
        return _SESV2
    if call.service == "ses":
        return _SES_V1
    return _S3


class Faults:
    """WSGI middleware: the outermost layer, so a fault never reaches the guard, the lock or moto."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.rate = _env_rate()
        seed = os.environ.get("EMULATOR_FAULTS_SEED", "").strip()
        self.seed = int(seed) if seed else random.SystemRandom().randrange(1, 2**31)
        self.rng = random.Random(self.seed)
        self.pump = os.environ.get("EMULATOR_FAULTS_PUMP") == "1"
        self.only = _parse_only(os.environ.get("EMULATOR_FAULTS_ONLY"))
        self.calls = 0
        self.injected: dict[str, dict[str, int]] = {}
        self.recent: deque[tuple[str, str, str]] = deque(maxlen=500)
        self.callers: dict[str, dict[str, int]] = {}
        if self.rate > 0:
            print(
                f"faults: {self.rate:.0%} of the functions' calls{' and the pump' if self.pump else ''} "
                f"fail on purpose, seed {self.seed}",
                file=sys.stderr,
                flush=True,
            )

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/_local/faults":
            return self.local(environ, start_response)
        if self.rate <= 0 or path.startswith(("/_local/", "/moto-api")):
            return self.app(environ, start_response)
        call = self.eligible(environ)
        if call is None:
            return self.app(environ, start_response)
        with self.lock:
            self.calls += 1
            seen = self.callers.setdefault(call.caller, {"calls": 0, "faults": 0})
            seen["calls"] += 1
            failed = self.rng.random() < self.rate
            seen["faults"] += int(failed)
            pick = self.rng.randrange(1 << 30) if failed else 0
            if failed:
                per_service = self.injected.setdefault(call.service, {})
                per_service[call.operation] = per_service.get(call.operation, 0) + 1
        if not failed:
            return self.app(environ, start_response)
        # The body is read (and dropped) so the connection stays usable for the client's retry.
        _read_body(environ)
        choices = menu(call)
        fault = choices[pick % len(choices)]
        with self.lock:
            self.recent.append((call.service, call.operation, fault.code))
        return respond(environ, start_response, call, fault, pick // len(choices))

    def eligible(self, environ: Environ) -> Call | None:
        from iam_guard import DEVELOPER_KEY, find_session, signer_of

        signer = signer_of(environ)
        if signer is None:
            return None
        if signer.key == DEVELOPER_KEY:
            agent = f"{environ.get('HTTP_USER_AGENT', '')} {environ.get('HTTP_X_AMZ_USER_AGENT', '')}"
            if not (self.pump and f"app/{PUMP_APP_NAME}" in agent):
                return None
            caller = "pump"
        else:
            session = find_session(signer.key)
            if session is None:
                return None
            caller = str(session.role_arn).rsplit("/", 1)[-1]
        call = classify(environ, signer.service)
        if call is None:
            return None
        if self.only and call.service not in self.only and f"{call.service}:{call.operation}" not in self.only:
            return None
        call.caller = caller
        return call

    def report(self) -> dict[str, Any]:
        with self.lock:
            return {
                "rate": self.rate,
                "seed": self.seed,
                "pump": self.pump,
                "only": sorted(self.only),
                "calls": self.calls,
                "injected": {service: dict(ops) for service, ops in sorted(self.injected.items())},
                "recent": [list(fault) for fault in self.recent],
                "callers": {caller: dict(n) for caller, n in sorted(self.callers.items())},
            }

    def local(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method == "DELETE":
            with self.lock:
                self.calls, self.injected, self.callers = 0, {}, {}
                self.recent.clear()
        elif method == "PUT":
            try:
                change = json.loads(_read_body(environ) or b"{}")
                if not isinstance(change, dict):
                    raise ValueError("an object")
                with self.lock:
                    if "rate" in change:
                        rate = float(change["rate"])
                        if not 0.0 <= rate <= 1.0:
                            raise ValueError("rate is a share between 0 and 1")
                        self.rate = rate
                    if "seed" in change:
                        self.seed = int(change["seed"])
                        self.rng = random.Random(self.seed)
                    if "pump" in change:
                        self.pump = bool(change["pump"])
                    if "only" in change:
                        self.only = frozenset(str(o) for o in change["only"] or [])
            except (ValueError, TypeError) as err:
                return _json(start_response, "400 Bad Request", {"error": str(err)}, "application/json", [])
        elif method != "GET":
            answer = {"error": "GET, PUT or DELETE"}
            return _json(start_response, "405 Method Not Allowed", answer, "application/json", [])
        return _json(start_response, "200 OK", self.report(), "application/json", [])
