"""A Hugging Face hub stand-in on 127.0.0.1, in a thread: `/{repo}/resolve/{revision}/{file}`
answered as huggingface_hub's hf_hub_download expects (HEAD with ETag, X-Repo-Commit and
Content-Length; GET with byte ranges), with a switch to drop one transfer part-way."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """Serves {(repo_id, filename): bytes}; anything else is a 404 as the hub gives it."""

    def __init__(self, files: dict[tuple[str, str], bytes]):
        self.files = files
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self.drop_at: int | None = None  # close the connection once after this many bytes
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body: bool):
                rng = self.headers.get("Range")
                server.requests.append((self.command, self.path, rng))
                m = re.fullmatch(r"/(.+)/resolve/([^/]+)/(.+)", self.path)
                data = server.files.get((m.group(1), m.group(3))) if m else None
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RepoNotFound")
                    self.send_header("X-Error-Message", "Repository not found")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng else 0
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if not body:
                    return
                if server.drop_at is not None and start < server.drop_at:
                    self.wfile.write(data[start : server.drop_at])
                    self.wfile.flush()
                    server.drop_at = None
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def gets(self) -> list[tuple[str, str, str | None]]:
        """The file downloads asked for (huggingface_hub also asks other /api/ routes)."""
        return [r for r in self.requests if r[0] == "GET" and "/resolve/" in r[1]]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
