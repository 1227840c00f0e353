"""An HTTP proxy process that stands between mediasift and a real S3 server and misbehaves for a while, as
a throttled or flaky store does: during its first `--faulty` requests every `--slowdown-every`-th is
answered `503 SlowDown` and every `--reset-every`-th has its connection reset (RST, no answer); the rest,
and every request after, are forwarded. `GET /__faults` answers what it did, as JSON.

Run: python -m tests.faults.fault_proxy --upstream http://127.0.0.1:PORT; it prints `listening PORT`.
"""

import argparse
import http.client
import http.server
import json
import socket
import struct
import threading
from urllib.parse import urlsplit

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class Faults:
    def __init__(self, faulty: int, slowdown_every: int, reset_every: int):
        self.faulty, self.slowdown_every, self.reset_every = faulty, slowdown_every, reset_every
        self.lock = threading.Lock()
        self.counts = {"requests": 0, "slowdown": 0, "reset": 0, "forwarded": 0}

    def decide(self) -> str:
        with self.lock:
            self.counts["requests"] += 1
            n = self.counts["requests"]
            fault = "forwarded"
            if n <= self.faulty and n % self.reset_every == 0:
                fault = "reset"
            elif n <= self.faulty and n % self.slowdown_every == 0:
                fault = "slowdown"
            self.counts[fault] += 1
            return fault


def handler(upstream: str, faults: Faults) -> type[http.server.BaseHTTPRequestHandler]:
    target = urlsplit(upstream)

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            if self.path == "/__faults":
                self._answer(200, json.dumps(faults.counts).encode(), {"Content-Type": "application/json"})
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = faults.decide()
            if fault == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            if fault == "slowdown":
                self._answer(503, SLOWDOWN, {"Content-Type": "application/xml"})
                return
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            content = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}}
            self._answer(response.status, content, kept, head=self.command == "HEAD",
                         length=response.getheader("Content-Length"))
            connection.close()

        def _answer(self, status: int, content: bytes, headers: dict, head: bool = False,
                    length: str | None = None) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", length if head and length is not None else str(len(content)))
            self.end_headers()
            if not head:
                self.wfile.write(content)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        def log_message(self, *args) -> None:
            pass

    return Proxy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--faulty", type=int, default=80, help="requests during which faults are injected")
    parser.add_argument("--slowdown-every", type=int, default=2)
    parser.add_argument("--reset-every", type=int, default=5)
    args = parser.parse_args()
    faults = Faults(args.faulty, args.slowdown_every, args.reset_every)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(args.upstream, faults))
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
