"""An HTTP server on 127.0.0.1 for the network tests: serves one body at any path, and can
fail the first requests or cut the body short."""

import contextlib
import http.server
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.requests += 1
        body = server.body
        if server.fail_first > 0:
            server.fail_first -= 1
            self.send_error(500, "try again")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if server.truncate else body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(body: bytes, name: str, handler=Handler):
    """A running server whose .url ends in /name; .requests counts the GETs."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.body, httpd.requests, httpd.fail_first, httpd.truncate = body, 0, 0, False
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/{name}"
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
