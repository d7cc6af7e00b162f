"""A real S3 server on 127.0.0.1 for tests (moto's, the `dev` extra), optionally one that ignores conditional writes.

`python -m pipeline.testing.s3_server PORT [--ignore-conditions]` serves moto's S3 on loopback.
With ``--ignore-conditions`` the ``If-None-Match`` and ``If-Match`` headers are dropped before
moto sees them: the behaviour of S3-compatible stores that accept conditional writes and do not
honour them, which the output probe must refuse.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

IGNORED_HEADERS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def s3_server(ignore_conditions: bool = False, timeout: float = 30.0) -> Iterator[str]:
    """Run a server in a child process; yields its endpoint URL (http://127.0.0.1:PORT)."""
    port = free_port()
    command = [sys.executable, "-m", "pipeline.testing.s3_server", str(port)]
    if ignore_conditions:
        command.append("--ignore-conditions")
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if server.poll() is not None:
                raise RuntimeError(f"the S3 test server exited with {server.returncode}")
            time.sleep(0.1)
        else:
            raise RuntimeError("the S3 test server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def s3_env(endpoint: str) -> dict[str, str]:
    """The AWS_* environment a job needs to reach the test server (credentials are moto's dummies)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--ignore-conditions", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    app = DomainDispatcherApplication(create_backend_app)

    def ignoring(environ, start_response):
        for header in IGNORED_HEADERS:
            environ.pop(header, None)
        return app(environ, start_response)

    run_simple("127.0.0.1", args.port, ignoring if args.ignore_conditions else app, threaded=True)


if __name__ == "__main__":
    main()
