"""An HTTP server on 127.0.0.1, in a thread, serving one archive: the tests' STL10 mirror."""

from __future__ import annotations

import http.server
import re
import threading

NAME = "stl10_binary.tar.gz"


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving one file, with switchable misbehaviour."""

    def __init__(self, data: bytes):
        self.data = data
        self.ranges: list[str | None] = []  # the Range header of every GET
        self.honor_range = True
        self.drop_at: int | None = None  # close the connection once after this many bytes
        self.unavailable = 0  # answer this many GETs with 503 first
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.ranges.append(rng)
                if server.unavailable:
                    server.unavailable -= 1
                    self.send_error(503)
                    return
                if self.path != "/" + NAME:
                    self.send_error(404)
                    return
                start = 0
                if rng and server.honor_range:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(server.data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header(
                        "Content-Range", f"bytes {start}-{len(server.data) - 1}/{len(server.data)}"
                    )
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(server.data) - start))
                self.end_headers()
                body = server.data[start:]
                if server.drop_at is not None and start < server.drop_at:
                    self.wfile.write(body[: server.drop_at - start])
                    self.wfile.flush()
                    server.drop_at = None
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{NAME}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
