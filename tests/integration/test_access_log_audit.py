"""The access log answers audit questions (issue 11).

After a skopeo push of two tags and failed logins (Basic on /v2/ and a token POST), every
line carries the request id, the user agent and, where the request names one, the tag or
digest; refused credentials leave the user name that was tried, never the password. The
request id is the `X-Request-Id` answered to the client and the one the backend received.

The backend's side of the request id is checked with a small HTTP stand-in that records
request headers (a second backend): the distribution registry does not report the headers
it was sent. Everything else runs against the real registry.
"""
import http.server
import json
import threading
import time

import requests

from dgtest import images
from dgtest.ops import access_log_lines, auth_gateway_config, write_htpasswd
from dgtest.ports import free_port
from dgtest.tools import ClientEnv

FIELDS = ["time", "request_id", "client", "user", "attempted_user", "user_agent", "repository",
          "image", "reference", "operation", "method", "status", "bytes_in", "bytes_out",
          "duration_ms", "backend", "backend_status"]


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_GET(self):  # noqa: N802
        _Recorder.seen.append(dict(self.headers))
        body = b'{"name":"x","tags":[]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _wait_lines(path, pred, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        lines = access_log_lines(path)
        if pred(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_access_log_has_every_audit_field(dockgate, registry, tmp_path, unique):
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Recorder)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        cfg = auth_gateway_config(registry.url,
                                  {"docker-local": {"write": ["alice"], "read": ["alice"]}},
                                  auth={"challenge": "bearer"},
                                  log={"format": "json", "access_log": "access.log"})
        cfg["backends"]["stub"] = {"url": f"http://127.0.0.1:{stub.server_address[1]}"}
        cfg["repositories"]["stubbed"] = {"backend": "stub", "type": "local",
                                          "anonymous_read": True}
        gw = dockgate(cfg, start=False)
        write_htpasswd(gw.dir / "users.htpasswd", {"alice": "pw-alice-audit"})
        gw.start()
        log = gw.dir / "access.log"
        ca = str(gw.pki.ca_crt)
        port = gw.port("path")

        # A push of two tags by skopeo.
        client = ClientEnv(tmp_path / "client", gw.pki.cert_dir)
        name = unique("audit")
        img1, img2 = images.make_image((900,)), images.make_image((900,))
        layout = images.write_oci_layout(tmp_path / "src", {"1": img1, "2": img2})
        for tag in ("1", "2"):
            client.skopeo_copy(f"oci:{layout}:{tag}",
                               f"docker://127.0.0.1:{port}/docker-local/{name}:{tag}",
                               "--dest-creds", "alice:pw-alice-audit")

        # Failed logins: Basic on /v2/, and a token POST with a password grant.
        r = requests.get(f"https://127.0.0.1:{port}/v2/", auth=("mallory", "guess-1"),
                         verify=ca, timeout=10, headers={"User-Agent": "audit-probe/1"})
        assert r.status_code == 401
        assert r.headers.get("X-Request-Id"), dict(r.headers)
        failed_id = r.headers["X-Request-Id"]
        r = requests.post(f"https://127.0.0.1:{port}/v2/token",
                          data={"grant_type": "password", "username": "trudy",
                                "password": "guess-2", "service": "dockgate"},
                          verify=ca, timeout=10)
        assert r.status_code == 401, r.text

        # A proxied request: the backend got the id the client got back.
        r = requests.get(f"https://127.0.0.1:{port}/v2/stubbed/x/tags/list", verify=ca,
                         timeout=10, headers={"X-Request-Id": "client-chosen"})
        assert r.status_code == 200, r.text
        proxied_id = r.headers.get("X-Request-Id")
        assert proxied_id and proxied_id != "client-chosen", dict(r.headers)
        got = [h.get("X-Request-Id") or h.get("x-request-id") for h in _Recorder.seen]
        assert proxied_id in got, (proxied_id, got)

        lines = _wait_lines(log, lambda ls: any(l.get("request_id") == proxied_id for l in ls))
        text = log.read_text()
        for secret in ("pw-alice-audit", "guess-1", "guess-2"):
            assert secret not in text, f"{secret} in the access log"
        for l in lines:
            assert set(FIELDS) <= set(l), l
            assert l["request_id"], l
        ids = [l["request_id"] for l in lines]
        assert len(set(ids)) == len(ids), "request ids repeat"

        puts = [l for l in lines if l["operation"] == "manifest_put" and l["image"] == name]
        assert sorted(l["reference"] for l in puts) == ["1", "2"], puts
        for l in puts:
            assert l["user"] == "alice" and l["status"] == 201, l
            assert "skopeo" in l["user_agent"].lower() or "containers" in l["user_agent"], l
        blobs = [l for l in lines if l["image"] == name and l["operation"].startswith("blob")
                 and l["reference"]]
        assert blobs and all(l["reference"].startswith("sha256:") for l in blobs), lines

        failed = [l for l in lines if l["request_id"] == failed_id]
        assert len(failed) == 1, lines
        f = failed[0]
        assert (f["status"], f["user"], f["attempted_user"], f["user_agent"]) == \
            (401, "", "mallory", "audit-probe/1"), f
        token = [l for l in lines if l["attempted_user"] == "trudy"]
        assert token and token[0]["status"] == 401 and token[0]["user"] == "", lines
        ok = [l for l in lines if l["user"]]
        assert all(l["attempted_user"] == "" for l in ok), ok
        print(json.dumps(puts[0]))
    finally:
        stub.shutdown()
