"""Schema1 test images: OCI layouts for `skopeo copy --format v2s1`, hand-signed schema1
manifests (libtrust-style JWS), and quick manifest-only tags for big scans.
"""
import base64
import gzip
import hashlib
import io
import json
import os
import tarfile

import requests

from dgtest.images import (DOCKER_CONFIG, DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP,
                           OCI_MANIFEST, Blob, Image, random_layer_tar, sha256_digest)

OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
EMPTY_TAR = bytes(1024)                       # what an empty `tar` writes
EMPTY_TAR_DIGEST = sha256_digest(EMPTY_TAR)  # sha256:5f70bf18…
EMPTY_GZIP_DIGEST = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"


def source_image(created="2024-05-01T10:20:30.123Z", uncompressed=True, size=3000):
    """The test plan's source: gzip layer A, uncompressed layer B (gzip with
    uncompressed=False), A again, and three empty-layer history entries.
    Returns (Image, diff_ids base first)."""
    tar_a = random_layer_tar(size, "a.bin")
    tar_b = random_layer_tar(5000, "b.bin")
    a = Blob(gzip.compress(tar_a, compresslevel=1, mtime=0), OCI_LAYER_GZIP)
    b = (Blob(tar_b, OCI_LAYER_TAR) if uncompressed
         else Blob(gzip.compress(tar_b, compresslevel=1, mtime=0), OCI_LAYER_GZIP))
    layers = [a, b, a]
    diff_ids = [sha256_digest(tar_a), sha256_digest(tar_b), sha256_digest(tar_a)]
    history = [
        {"created": created, "created_by": "/bin/sh -c #(nop) ADD a.bin /"},
        {"created": created, "created_by": "/bin/sh -c #(nop) ENV X=1", "empty_layer": True},
        {"created": created, "created_by": "/bin/sh -c #(nop) ADD b.bin /",
         "author": "dockgate <tests@example.invalid>"},
        {"created": created, "created_by": "/bin/sh -c #(nop) LABEL a=<b>&c",
         "empty_layer": True, "comment": "html <escapes> & more"},
        {"created": created, "created_by": "/bin/sh -c #(nop) ADD a.bin /again"},
        {"created": created, "created_by": "/bin/sh -c #(nop) CMD [\"sh\"]",
         "empty_layer": True},
    ]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Env": ["PATH=/usr/bin", "X=1"], "Cmd": ["sh"],
                   "Labels": {"a": "<b>&c", "nonce": os.urandom(4).hex()}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    cfg = Blob(json.dumps(config).encode(), OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg.descriptor(),
                "layers": [l.descriptor() for l in layers]}
    return Image(config=cfg, layers=layers, manifest=json.dumps(manifest).encode(),
                 media_type=OCI_MANIFEST), diff_ids


def push_v2s1(client, layout, tag, hostport, name, dest_tag):
    """skopeo signs and pushes a schema1 copy of oci:layout:tag (plain http)."""
    client.skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", "--format", "v2s1",
                  f"oci:{layout}:{tag}", f"docker://{hostport}/{name}:{dest_tag}", timeout=120)


# Hand-signed schema1 ------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _libtrust_kid(public_key) -> str:
    """libtrust's key ID: base32 of sha256(PKIX DER)[:30] in groups of 4."""
    from cryptography.hazmat.primitives import serialization
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


def sign_schema1(payload: dict) -> bytes:
    """A libtrust-style signed manifest: pretty JSON (3-space indent like libtrust), with
    `"signatures"` spliced in before the closing brace; ES256 with a fresh key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    body = json.dumps(payload, indent=3).encode()
    # formatLength: up to the last non-space before the final '}'.
    close = body.rindex(b"}")
    format_length = len(body[:close].rstrip())
    tail = body[format_length:]
    protected = _b64url(json.dumps({
        "formatLength": format_length, "formatTail": _b64url(tail),
        "time": "2024-01-01T00:00:00Z"}).encode())
    key = ec.generate_private_key(ec.SECP256R1())
    nums = key.public_key().public_numbers()
    jwk = {"crv": "P-256", "kty": "EC", "kid": _libtrust_kid(key.public_key()),
           "x": _b64url(nums.x.to_bytes(32, "big")), "y": _b64url(nums.y.to_bytes(32, "big"))}
    signing_input = f"{protected}.{_b64url(body[:format_length] + tail)}".encode()
    der = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    sig = _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    sigs = [{"header": {"jwk": jwk, "alg": "ES256"}, "signature": sig, "protected": protected}]
    sig_json = json.dumps(sigs, indent=3).replace("\n", "\n   ")
    signed = body[:format_length] + b',\n   "signatures": ' + sig_json.encode() + tail
    return signed


def payload_digest(body: bytes) -> str:
    """sha256 of the signed payload (what the registry reports as the digest)."""
    sig = json.loads(body)["signatures"][0]["protected"]
    prot = json.loads(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    tail = base64.urlsafe_b64decode(prot["formatTail"] + "=" * (-len(prot["formatTail"]) % 4))
    return sha256_digest(body[:prot["formatLength"]] + tail)


def upload_blob(base, name, data, auth=None):
    s = requests.Session()
    s.auth = auth
    d = sha256_digest(data)
    if s.head(f"{base}/v2/{name}/blobs/{d}").status_code == 200:
        return d
    r = s.post(f"{base}/v2/{name}/blobs/uploads/")
    assert r.status_code == 202, r.text
    loc = r.headers["Location"]
    if loc.startswith("/"):
        loc = base + loc
    sep = "&" if "?" in loc else "?"
    r = s.put(f"{loc}{sep}digest={d}", data=data,
              headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return d


def edge_case_image(base, name, tag):
    """The reference's edge cases in one hand-signed schema1, pushed straight to the
    backend: a duplicated top entry, a raw uncompressed blob, raw empty-tar blobs with
    Size 0 and no throwaway field, docker_version 1.6.2. Returns (digest, diff_ids)."""
    tar_a = random_layer_tar(2500, "e.bin")
    gz_a = gzip.compress(tar_a, compresslevel=1, mtime=0)
    tar_raw = random_layer_tar(1500, "raw.bin")
    for blob in (gz_a, tar_raw, EMPTY_TAR):
        upload_blob(base, name, blob)
    ids = [hashlib.sha256(os.urandom(8)).hexdigest() for _ in range(4)]
    created = "2015-06-01T12:00:00.5Z"
    # index 0 is the top; the top entry appears twice (the duplicated-top bug).
    top = {"id": ids[3], "parent": ids[2], "created": created, "docker_version": "1.6.2",
           "architecture": "amd64", "os": "linux", "author": "edge",
           "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"x\"]"]},
           "config": {"Cmd": ["x"], "Env": ["A=<1>"]}, "Size": 0}
    entries = [
        (EMPTY_TAR_DIGEST, top),
        (EMPTY_TAR_DIGEST, top),
        (sha256_digest(tar_raw), {"id": ids[2], "parent": ids[1], "created": created,
                                  "container_config": {"Cmd": ["/bin/sh", "-c", "add raw"]}}),
        (EMPTY_TAR_DIGEST, {"id": ids[1], "parent": ids[0], "created": created, "Size": 0,
                            "container_config": {"Cmd": ["/bin/sh", "-c", "true"]}}),
        (sha256_digest(gz_a), {"id": ids[0], "created": created,
                               "container_config": {"Cmd": ["/bin/sh", "-c", "add e"]}}),
    ]
    payload = {
        "schemaVersion": 1, "name": "not/the-same-name", "tag": "whatever",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": b} for b, _ in entries],
        "history": [{"v1Compatibility": json.dumps(v, separators=(",", ":"))}
                    for _, v in entries],
    }
    body = sign_schema1(payload)
    r = requests.put(f"{base}/v2/{name}/manifests/{tag}", data=body,
                     headers={"Content-Type":
                              "application/vnd.docker.distribution.manifest.v1+prettyjws"})
    assert r.status_code == 201, (r.status_code, r.text)
    digest = r.headers["Docker-Content-Digest"]
    assert digest == payload_digest(body)
    empty = EMPTY_TAR_DIGEST
    # base first; the duplicated top collapses to one entry.
    diff_ids = [sha256_digest(tar_a), empty, sha256_digest(tar_raw), empty]
    return digest, diff_ids


def schema2_tags(base, name, tags, auth=None):
    """One small schema2 image under many tags, by manifest PUTs (fast)."""
    layer = Blob(gzip.compress(random_layer_tar(64), mtime=0), "x")
    cfg = Blob(json.dumps({"architecture": "amd64", "os": "linux",
                           "rootfs": {"type": "layers", "diff_ids": []}}).encode(),
               DOCKER_CONFIG)
    upload_blob(base, name, layer.data, auth)
    upload_blob(base, name, cfg.data, auth)
    body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                       "config": cfg.descriptor(),
                       "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                   "digest": layer.digest, "size": layer.size}]}).encode()
    s = requests.Session()
    s.auth = auth
    for t in tags:
        r = s.put(f"{base}/v2/{name}/manifests/{t}", data=body,
                  headers={"Content-Type": DOCKER_MANIFEST})
        assert r.status_code == 201, r.text
    return sha256_digest(body)


def tar_bytes(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for n, data in files.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()
