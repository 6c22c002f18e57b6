"""Images without a network: random layers, OCI/Docker manifests, OCI image layouts.

Pure stdlib. An OCI layout written here can be pushed with
`skopeo copy oci:DIR:TAG docker://HOST:PORT/NAME:TAG`.
"""
import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"

# What a modern client sends; without it distribution down-converts or 404s.
ACCEPT_ALL = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST,
                        SCHEMA1_SIGNED, SCHEMA1])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path, bufsize=8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(bufsize)
            if not chunk:
                break
            h.update(chunk)
    return "sha256:" + h.hexdigest()


@dataclass
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self):
        return sha256_digest(self.data)

    @property
    def size(self):
        return len(self.data)

    def descriptor(self, **extra):
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        d.update(extra)
        return d


@dataclass
class Image:
    config: Blob
    layers: list
    manifest: bytes
    media_type: str
    platform: dict = field(default_factory=dict)

    @property
    def digest(self):
        return sha256_digest(self.manifest)

    @property
    def blobs(self):
        return [self.config, *self.layers]

    def descriptor(self):
        d = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest)}
        if self.platform:
            d["platform"] = dict(self.platform)
        return d


def random_layer_tar(size, name="payload.bin"):
    """An uncompressed tar holding one file of `size` random bytes (reproducible metadata)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


def gzip_bytes(data):
    return gzip.compress(data, compresslevel=1, mtime=0)


def make_image(layer_sizes=(2048, 30000), kind="oci", os_name="linux", arch="amd64",
               labels=None) -> Image:
    """A small image with random gzipped tar layers. kind: "oci" or "docker" (schema2)."""
    layer_mt = OCI_LAYER_GZIP if kind == "oci" else DOCKER_LAYER_GZIP
    layers, diff_ids = [], []
    for i, size in enumerate(layer_sizes):
        tar = random_layer_tar(size, name=f"layer{i}.bin")
        diff_ids.append(sha256_digest(tar))
        layers.append(Blob(gzip_bytes(tar), layer_mt))
    config = {
        "architecture": arch,
        "os": os_name,
        "config": {"Labels": labels or {"dockgate.test": os.urandom(4).hex()}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"dockgate test layer {i}"} for i in range(len(layers))],
    }
    config_blob = Blob(json.dumps(config, sort_keys=True).encode(),
                       OCI_CONFIG if kind == "oci" else DOCKER_CONFIG)
    media_type = OCI_MANIFEST if kind == "oci" else DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config_blob.descriptor(),
        "layers": [l.descriptor() for l in layers],
    }
    return Image(config=config_blob, layers=layers,
                 manifest=json.dumps(manifest, indent=2).encode(), media_type=media_type,
                 platform={"os": os_name, "architecture": arch})


def make_index(images, kind="oci"):
    """(bytes, media_type) of an index / manifest list over the given images."""
    mt = OCI_INDEX if kind == "oci" else DOCKER_LIST
    body = {"schemaVersion": 2, "mediaType": mt, "manifests": [i.descriptor() for i in images]}
    return json.dumps(body, indent=2).encode(), mt


def write_oci_layout(directory, tagged_images: dict) -> Path:
    """Write {tag: Image} as an OCI image layout (blobs, index.json, oci-layout)."""
    d = Path(directory)
    blobs = d / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (d / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    entries = []
    for tag, image in tagged_images.items():
        for blob in image.blobs:
            (blobs / blob.digest.split(":", 1)[1]).write_bytes(blob.data)
        (blobs / image.digest.split(":", 1)[1]).write_bytes(image.manifest)
        desc = {"mediaType": image.media_type, "digest": image.digest,
                "size": len(image.manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag}}
        entries.append(desc)
    (d / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    return d


def random_file(path, size, chunk=8 << 20) -> str:
    """Write `size` random bytes to path; return the sha256 digest."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            data = os.urandom(min(chunk, left))
            h.update(data)
            f.write(data)
            left -= len(data)
    return "sha256:" + h.hexdigest()
