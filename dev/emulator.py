"""The local AWS emulator: moto server with IAM for role credentials, serialized writes, a sturdy dump.

Calls signed with an assumed role's credentials are authorised as AWS would (dev/iam_guard.py, the
outermost middleware): every (action, resource) pair the call needs must be allowed by the role's
policies, an explicit Deny wins, and a refusal is the service's own AccessDenied error. So a
function run locally under its own role fails on any call its role does not allow. The developer
key `test` (tests, provisioning) and unsigned requests are never checked. moto's own enforcement
(INITIAL_NO_AUTH_ACTION_COUNT) is not used: it authorises DynamoDB and SES v2 against resource
"*" (a policy naming a table never matches), denies on any condition it cannot evaluate even in
an Allow statement (s3:prefix, kms:ViaService), and its AssumeRole fails for roles trusting a
service principal.

moto is not thread-safe: a conditional write checks and then writes, and a transaction checks all
its conditions before it applies any write. DynamoDB does both atomically. So every request except
S3's is served one at a time; our handlers still interleave (read, read, write, write), and races
between them stay real in the tests. S3 requests run concurrently, as they must: an export streams
a GetObject while it uploads parts, and one thread would deadlock on that.

What would make each request cost more as the stack fills (moto copying whole tables per
transaction, keeping every object it ever made, sorting the table for a Query) is changed in
dev/emulator_patches.py. Two paths of its own, outside any AWS API: GET /_local/health answers
once the server is up, and GET /_local/mail?to=ADDRESS lists the mail sent to one address (the
mailbox's fast path: /moto-api/data.json dumps every message); with &more_than=N&wait=SECONDS
(at most 20) it answers once that address has more than N messages, or when the wait is over.
With EMULATOR_METER=1 (or after PUT /_local/meter), GET /_local/meter reports every AWS call by
caller, service and operation, with DynamoDB's capacity units computed from item sizes; DELETE
/_local/meter starts it again. EMULATOR_ACCESS_LOG=1 logs a line per request.
"""

import argparse
import json
import os
import sys
import threading

from cheroot import wsgi
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

# Run as a script, dev/ is on the path already; imported (tests, tools), it may not be.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulator_patches  # noqa: E402
from emulator_faults import Faults  # noqa: E402
from iam_guard import IamGuard  # noqa: E402


def _robust_model_data(self, request, full_url, headers):  # type: ignore[no-untyped-def]
    """moto's /moto-api/data.json, skipping attributes whose getter raises.

    moto only skips TypeError/AttributeError/ValueError; after an S3 multipart upload a tracked
    part's `status` property raises MissingBucket and the whole dump fails, which would take the
    mailbox (sent mail is read from this dump) down with it. Each value is copied as it is checked,
    so a concurrent S3 request cannot change it before the dump.
    """
    from moto.core.model_instances import model_data

    results = {}
    for service in sorted(model_data):
        results[service] = {}
        for name in sorted(model_data[service]):
            instances = []
            for instance in model_data[service][name].instances_tracked:
                fields = {}
                for attr in dir(instance):
                    if attr.startswith("_"):
                        continue
                    try:
                        # A snapshot, not the live object: S3 requests run concurrently and may
                        # add a non-serialisable key to a container between check and dump.
                        value = json.loads(json.dumps(getattr(instance, attr)))
                    except Exception:  # noqa: BLE001 - any failing attribute is left out
                        continue
                    fields[attr] = value
                instances.append(fields)
            results[service][name] = instances
    return 200, {"Content-Type": "application/javascript"}, json.dumps(results)


# Signalled, with the count of messages sent so far, each time SES accepts a message: a mailbox
# reader waiting for its mail wakes then instead of polling.
MAIL_SENT = threading.Condition()
_mail_sent = [0]


def _note_mail_sent() -> None:
    with MAIL_SENT:
        _mail_sent[0] += 1
        MAIL_SENT.notify_all()


class SerializeAllButS3:
    """WSGI middleware: one non-S3 request at a time (S3 keeps no state the others share)."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app
        self.lock = threading.Lock()
        # Per queue name: signalled when a message may have become receivable there.
        self.arrivals: dict[str, threading.Condition] = {}

    @staticmethod
    def is_s3(environ) -> bool:  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        return (
            "HTTP_X_AMZ_TARGET" not in environ
            and not path.startswith(("/v2/", "/moto-api"))
            and "Action=" not in environ.get("QUERY_STRING", "")
            and environ.get("CONTENT_TYPE", "") != "application/x-www-form-urlencoded"
        )

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        if self.is_s3(environ):
            return self.app(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("AmazonSQS."):
            return self.sqs(target.split(".", 1)[1], environ, start_response)
        with self.lock:
            answer = list(self.app(environ, start_response))
        if environ.get("PATH_INFO", "").startswith("/v2/email/outbound-emails"):
            _note_mail_sent()
        return answer

    def arrival(self, queue_url: str) -> threading.Condition:
        name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        return self.arrivals.setdefault(name, threading.Condition(self.lock))

    def sqs(self, action: str, environ, start_response):  # type: ignore[no-untyped-def]
        """SQS with long polling that waits outside the lock. moto's own long poll sleeps inside
        the request, which here would hold every other call for up to 20 s, so the pump used to
        poll without waiting: a dozen pollers took a fifth of the emulator's CPU while nothing
        arrived. Here a ReceiveMessage with WaitTimeSeconds asks moto without waiting, then waits,
        lock released, until a call may have made a message receivable on that queue (a send, a
        delete that frees a FIFO group, a visibility change) or a second has passed (a visibility
        timeout or a delay ran out), and asks again."""
        import io
        import time

        size = environ.get("CONTENT_LENGTH") or "0"
        raw = environ["wsgi.input"].read(int(size)) if size.isdigit() else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None

        def call(payload: bytes, respond):  # type: ignore[no-untyped-def]
            env = dict(environ)
            env["wsgi.input"] = io.BytesIO(payload)
            env["CONTENT_LENGTH"] = str(len(payload))
            return list(self.app(env, respond))

        wait = body.get("WaitTimeSeconds") if isinstance(body, dict) else None
        if action != "ReceiveMessage" or not isinstance(wait, int) or not 0 < wait <= 20:
            with self.lock:
                answer = call(raw, start_response)
                if action.startswith(("SendMessage", "DeleteMessage", "ChangeMessageVisibility")) and isinstance(
                    body, dict
                ):
                    self.arrival(str(body.get("QueueUrl", ""))).notify_all()
            return answer

        once = json.dumps({**body, "WaitTimeSeconds": 0}).encode()
        deadline = time.monotonic() + wait
        with self.lock:
            arrival = self.arrival(str(body.get("QueueUrl", "")))
            while True:
                response: list = []  # type: ignore[type-arg]
                answer = call(once, lambda status, headers, exc_info=None: response.append((status, headers)))
                left = deadline - time.monotonic()
                if left <= 0 or not response[0][0].startswith("200") or _received(b"".join(answer)):
                    break
                arrival.wait(timeout=min(1.0, left))
        start_response(*response[0])
        return answer


def _received(answer: bytes) -> bool:
    try:
        return bool((json.loads(answer or b"{}") or {}).get("Messages"))
    except ValueError:
        return True


def _mail_view(m) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return {"id": m.id, "source": m.source, "destinations": m.destinations, "subject": m.subject, "body": m.body}


class MailIndex:
    """The sent mail by recipient, indexed as it is sent: a mailbox reader polls its address while
    mail piles up, and a scan of every message per poll would make each poll cost more than the
    last (it was 40% of the emulator's CPU after 1,000 requests)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen = 0
        self.tracked: list | None = None  # type: ignore[type-arg]
        self.by_recipient: dict[str, list] = {}  # type: ignore[type-arg]

    def to_waiting(self, address: str, more_than: int, wait: float) -> list[dict]:  # type: ignore[type-arg]
        """The mail to `address`, once there is more than `more_than` of it or `wait` seconds
        have passed: a reader long-polls its mailbox instead of asking ten times a second."""
        import time

        deadline = time.monotonic() + wait
        while True:
            with MAIL_SENT:
                sent = _mail_sent[0]
            mail = self.to(address)
            left = deadline - time.monotonic()
            if len(mail) > more_than or left <= 0:
                return mail
            with MAIL_SENT:
                if _mail_sent[0] == sent:
                    MAIL_SENT.wait(timeout=min(left, 1.0))

    def to(self, address: str) -> list[dict]:  # type: ignore[type-arg]
        from moto.ses.models import Message

        with self.lock:
            tracked = Message.instances_tracked
            if tracked is not self.tracked or len(tracked) < self.seen:
                # moto's reset replaces the list: start again.
                self.tracked, self.seen, self.by_recipient = tracked, 0, {}
            for m in tracked[self.seen :]:
                for a in (m.destinations or {}).get("ToAddresses", []):
                    self.by_recipient.setdefault(a.lower(), []).append(m)
            self.seen = len(tracked)
            return [_mail_view(m) for m in self.by_recipient.get(address.lower(), [])]


class LocalPaths:
    """WSGI middleware: the emulator's own paths under /_local/ (never an AWS API's)."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app
        self.mail = MailIndex()

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_local/"):
            return self.app(environ, start_response)
        if path == "/_local/health":
            body: object = {"ok": True}
        elif path == "/_local/meter":
            # The meter (dev/emulator_patches.py): GET reports, DELETE starts again, PUT turns it on.
            method = environ.get("REQUEST_METHOD", "GET").upper()
            if method == "PUT":
                emulator_patches.meter_enable()
            elif method == "DELETE":
                emulator_patches.meter_reset()
            if not emulator_patches.meter_enabled():
                start_response("404 Not Found", [("Content-Type", "application/json")])
                return [b'{"error":"the meter is off: EMULATOR_METER=1 or PUT /_local/meter"}']
            body = emulator_patches.meter_report()
        elif path == "/_local/mail":
            from urllib.parse import parse_qs

            query = parse_qs(environ.get("QUERY_STRING", ""))
            to = query.get("to", [""])[0]
            try:
                more_than = int(query.get("more_than", ["-1"])[0])
                wait = min(max(float(query.get("wait", ["0"])[0]), 0.0), 20.0)
            except ValueError:
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [b'{"error":"more_than is a count, wait a number of seconds (at most 20)"}']
            body = self.mail.to_waiting(to, more_than, wait) if wait > 0 else self.mail.to(to)
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error":"not_found"}']
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]


class AccessLog:
    """WSGI middleware: one line per request on stderr (EMULATOR_ACCESS_LOG=1), for debugging."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        def logged(status, headers, exc_info=None):  # type: ignore[no-untyped-def]
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            print(f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')} {target} {status}", file=sys.stderr)
            return start_response(status, headers, exc_info)

        return self.app(environ, logged)


def _freeze_after_full_collections() -> None:
    """After each full collection, what survived it is frozen (gc.freeze): never scanned again by
    the cycle collector, still freed by reference counting when dropped. The emulator holds every
    item, object and message it was given (millions of objects after a few thousand requests),
    and a full collection walked all of them: a pause that grew with the stack, over a second
    after a few thousand requests. Frozen, a full collection walks only what came since."""
    import gc
    import time

    full = threading.Event()

    def noted(phase, info):  # type: ignore[no-untyped-def]
        if phase == "stop" and info.get("generation") == 2:
            full.set()

    def freeze() -> None:
        while True:
            full.wait()
            full.clear()
            gc.freeze()
            time.sleep(1)

    gc.callbacks.append(noted)
    threading.Thread(target=freeze, name="gc-freeze", daemon=True).start()


def _sockets_read_and_written_in_c() -> None:
    """cheroot reads and writes its sockets through _pyio, the pure-Python io module: each header
    line is read by a Python loop and each answer copied through a bytearray (about a tenth of the
    emulator's time under a burst). The C io module's buffered files do the same."""
    import io
    import socket

    from cheroot import connections

    class Reader(io.BufferedReader):
        def __init__(self, sock, mode="r", bufsize=io.DEFAULT_BUFFER_SIZE):  # type: ignore[no-untyped-def]
            super().__init__(socket.SocketIO(sock, mode), bufsize)
            self._sock = sock
            self.bytes_read = 0

        def read(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            val = super().read(*args, **kwargs)
            self.bytes_read += len(val)
            return val

        def has_data(self) -> bool:
            # Whether a next request is here already (pipelined): the buffer, or a read that must
            # not wait. The C reader does not tell how much it holds; a peek without waiting does.
            timeout = self._sock.gettimeout()
            try:
                self._sock.settimeout(0)
                return bool(self.peek(1))
            except OSError:
                return False
            finally:
                self._sock.settimeout(timeout)

    class Writer(io.BufferedWriter):
        def __init__(self, sock, mode="w", bufsize=io.DEFAULT_BUFFER_SIZE):  # type: ignore[no-untyped-def]
            super().__init__(socket.SocketIO(sock, mode), bufsize)
            self.bytes_written = 0

        def write(self, val):  # type: ignore[no-untyped-def]
            # cheroot's writer sends each write at once (headers, then each chunk of the body).
            written = super().write(val)
            self.flush()
            self.bytes_written += len(val)
            return written

    def make_file(sock, mode="r", bufsize=io.DEFAULT_BUFFER_SIZE):  # type: ignore[no-untyped-def]
        return (Reader if "r" in mode else Writer)(sock, mode, bufsize)

    connections.MakeFile = make_file


def main() -> None:
    _freeze_after_full_collections()
    _sockets_read_and_written_in_c()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    from moto.moto_api._internal.responses import MotoAPIResponse

    MotoAPIResponse.model_data = _robust_model_data
    emulator_patches.apply()
    # The guard is outermost: a refused call never waits for, or holds, the serializing lock.
    moto_app = emulator_patches.direct_json_protocols(DomainDispatcherApplication(create_backend_app))
    app = LocalPaths(IamGuard(SerializeAllButS3(emulator_patches.metered(moto_app))))
    # Faults on purpose (dev/emulator_faults.py: EMULATOR_FAULTS, GET /_local/faults), outermost:
    # a fault is decided before the call reaches the guard, the lock or moto, so nothing is written.
    app = Faults(app)
    if os.environ.get("EMULATOR_ACCESS_LOG") == "1":
        app = AccessLog(app)
    # cheroot (CherryPy's server), not werkzeug's development server (moto's own), which closes
    # the connection after every request and starts a thread for each: it keeps the SDKs'
    # connections alive, watches the idle ones with epoll, and serves requests from a pool of
    # threads big enough for the long polls that wait in it (each queue's pollers, each mailbox
    # reader). make bench-local: 3.9 requests/s on werkzeug, about 5 on waitress (whose loop walks
    # every open connection per event), 7-8 on cheroot.
    server = wsgi.Server(
        (args.host, args.port),
        app,
        numthreads=int(os.environ.get("EMULATOR_THREADS", "64")),
        # Idle keep-alive connections may wait this long for their next request.
        timeout=300,
        request_queue_size=128,
    )
    # Every function instance, poller and test keeps its connections: keep them all.
    server.keep_alive_conn_limit = 1000
    # An export's upload parts and a bench's big objects: nothing a test sends is refused.
    server.max_request_body_size = 0
    try:
        server.start()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
