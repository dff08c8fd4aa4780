"""The local AWS emulator: moto server, serving one request at a time.

moto's TransactWriteItems is not isolated: it snapshots the table, applies the writes, and on a
failed condition restores the snapshot, which erases any transaction another thread committed
meanwhile. Real DynamoDB transactions are serializable. Serving requests one at a time gives
the emulator that property; our handlers still interleave (read, read, write, write), so races
between them stay real in the tests.
"""

import argparse
import os

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    run_simple(
        args.host,
        args.port,
        DomainDispatcherApplication(create_backend_app),
        threaded=False,
        use_reloader=False,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
