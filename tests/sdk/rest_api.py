"""A tiny JSON REST API for the ai-mcp-proxy conversion tests (standard library only).

usage: python rest_api.py PORT     (prints `ready` once it listens on 127.0.0.1:PORT)

  GET    /shops/{shop}/orders/{id}  200 {"shop", "id", "expand", "trace", "api_version", "cookie"};
                                    404 text/plain when id is "404"
  POST   /orders                    201 {"id": 7, "received": <the JSON body>}
  DELETE /orders/{id}               204, no body
  anything else                     404 {"error": "no route"}

Every request is appended as one JSON line {"method", "path", "headers", "body"} to the
file named by REST_LOG, so a test can check exactly what the gateway sent.
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, body: bytes) -> None:
        path = os.environ.get("REST_LOG")
        if path:
            line = {"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace")}
            with open(path, "a") as f:
                f.write(json.dumps(line) + "\n")

    def answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        if body:
            self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.record(body)
        url = urlsplit(self.path)
        parts = url.path.split("/")  # raw segments: %2F stays inside its segment
        query = parse_qs(url.query)
        if self.command == "GET" and len(parts) == 5 and parts[1] == "shops" and parts[3] == "orders":
            order = unquote(parts[4])
            if order == "404":
                return self.answer(404, b"no such order", "text/plain")
            out = {"shop": unquote(parts[2]), "id": order, "expand": query.get("expand", []),
                   "trace": self.headers.get("x-trace"), "api_version": self.headers.get("x-api-version"),
                   "cookie": self.headers.get("cookie")}
            return self.answer(200, json.dumps(out).encode())
        if self.command == "POST" and url.path == "/orders":
            return self.answer(201, json.dumps({"id": 7, "received": json.loads(body or b"null")}).encode())
        if self.command == "DELETE" and len(parts) == 3 and parts[1] == "orders":
            return self.answer(204, b"")
        self.answer(404, json.dumps({"error": "no route"}).encode())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
