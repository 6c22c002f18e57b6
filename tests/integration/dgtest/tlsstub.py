"""A throwaway HTTPS server for checking the test PKI without dockgate.

Answers GET /v2/ with 200 {} and everything else with a registry-style 404, so real
clients (skopeo with Go's verifier, curl, requests) get past the TLS handshake.
"""
import http.server
import ssl
import threading

from .ports import free_port


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v2/":
            self._send(200, b"{}")
        else:
            self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"stub"}]}')

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


class TLSStub:
    def __init__(self, cert, key):
        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
