"""A stand-in for the vLLM server process in the supervisor's unit tests (not a fake of vLLM's API).

Serves /health and /v1/models on 127.0.0.1, and forks one child that sleeps, like vLLM's engine-core
process, so tests can check that the supervisor kills the whole process group.
"""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": "stand-in", "created": 1}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def main() -> None:
    port, pid_file = int(sys.argv[1]), sys.argv[2]
    child = os.fork()
    if child == 0:
        time.sleep(3600)
        os._exit(0)
    with open(pid_file, "a") as fh:
        fh.write(f"{os.getpid()} {child}\n")
    print("INFO Starting vLLM API server (stand-in)", flush=True)
    time.sleep(float(os.environ.get("STAND_IN_DELAY", "0.2")))
    print("INFO Application startup complete.", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
