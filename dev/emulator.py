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
mailbox's fast path: /moto-api/data.json dumps every message). With EMULATOR_METER=1 (or after PUT
/_local/meter), GET /_local/meter reports every AWS call by caller, service and operation, with
DynamoDB's capacity units computed from item sizes; DELETE /_local/meter starts it again.
"""

import argparse
import json
import os
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

# Run as a script, dev/ is on the path already; imported (tests, tools), it may not be.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulator_patches  # noqa: E402
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


class SerializeAllButS3:
    """WSGI middleware: one non-S3 request at a time (S3 keeps no state the others share)."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app
        self.lock = threading.Lock()

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
        with self.lock:
            return list(self.app(environ, start_response))


def _sent_mail() -> list[dict]:  # type: ignore[type-arg]
    from moto.ses.models import Message

    return [
        {
            "id": m.id,
            "source": m.source,
            "destinations": m.destinations,
            "subject": m.subject,
            "body": m.body,
        }
        for m in list(Message.instances_tracked)
    ]


class LocalPaths:
    """WSGI middleware: the emulator's own paths under /_local/ (never an AWS API's)."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app

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

            to = parse_qs(environ.get("QUERY_STRING", "")).get("to", [""])[0].lower()
            body = [
                m
                for m in _sent_mail()
                if any(a.lower() == to for a in (m["destinations"] or {}).get("ToAddresses", []))
            ]
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error":"not_found"}']
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    from moto.moto_api._internal.responses import MotoAPIResponse

    MotoAPIResponse.model_data = _robust_model_data
    emulator_patches.apply()
    run_simple(
        args.host,
        args.port,
        # The guard is outermost: a refused call never waits for, or holds, the serializing lock.
        LocalPaths(
            IamGuard(SerializeAllButS3(emulator_patches.metered(DomainDispatcherApplication(create_backend_app))))
        ),
        threaded=True,
        use_reloader=False,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
