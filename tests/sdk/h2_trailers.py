"""POSTs a body over HTTP/2 (h2c, prior knowledge) that ends with trailers,
not with the last DATA frame: the shape that never gives a filter an
end-of-stream body callback. For the ai-mcp-proxy tests.

usage: python h2_trailers.py PORT PATH BODY [NAME=VALUE ...]
Prints {"status": int, "body": str} as JSON.
"""

import json
import socket
import sys

import h2.config
import h2.connection
import h2.events


def main() -> None:
    port, path, body = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
    extra = [tuple(h.split("=", 1)) for h in sys.argv[4:]]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    headers = [(":method", "POST"), (":path", path), (":scheme", "http"), (":authority", f"127.0.0.1:{port}"),
               ("content-type", "application/json"), ("accept", "application/json, text/event-stream"), *extra]
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, headers)
    conn.send_data(stream, body)  # no END_STREAM: the trailers end it
    conn.send_headers(stream, [("x-trailer", "1")], end_stream=True)
    sock.sendall(conn.data_to_send())
    status, data, done = 0, b"", False
    while not done:
        chunk = sock.recv(65536)
        if not chunk:
            break
        for event in conn.receive_data(chunk):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                data += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        sock.sendall(conn.data_to_send())
    print(json.dumps({"status": status, "body": data.decode("utf-8", "replace")}))


if __name__ == "__main__":
    main()
