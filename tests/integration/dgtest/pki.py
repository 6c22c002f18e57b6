"""Test PKI: a CA and a server certificate made by `dockgate cert generate` (the default,
make_pki_dockgate) or by the openssl CLI (make_pki, DOCKGATE_TEST_PKI=openssl).

Everything that creates the session's certificates goes through the `pki` fixture.
"""
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .proc import run

SERVER_SANS = ["IP:127.0.0.1", "IP:::1", "DNS:localhost", "DNS:*.registry.localhost"]


@dataclass
class PKI:
    dir: Path
    ca_crt: Path
    ca_key: Path
    server_crt: Path
    server_key: Path
    cert_dir: Path  # a directory holding only ca.crt (for --cert-dir / --*-cert-dir)

    def install(self, dest_dir, cert_name="server.crt", key_name="server.key"):
        """Copy the server cert and key into dest_dir (for configs with relative paths)."""
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.server_crt, dest_dir / cert_name)
        shutil.copyfile(self.server_key, dest_dir / key_name)
        os.chmod(dest_dir / key_name, 0o600)
        return dest_dir / cert_name, dest_dir / key_name


def make_pki(directory) -> PKI:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    key, csr, crt = d / "server.key", d / "server.csr", d / "server.crt"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "30",
         "-subj", "/O=dockgate tests/CN=dockgate test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-addext", "subjectKeyIdentifier=hash"])
    run(["openssl", "req", "-new", *ec, "-keyout", key, "-out", csr,
         "-subj", "/O=dockgate tests/CN=localhost"])
    ext = d / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={','.join(SERVER_SANS)}\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
         "-CAcreateserial", "-out", crt, "-days", "30", "-sha256", "-extfile", ext])
    os.chmod(key, 0o600)
    cert_dir = d / "certdir"
    cert_dir.mkdir(exist_ok=True)
    shutil.copyfile(ca_crt, cert_dir / "ca.crt")
    return PKI(dir=d, ca_crt=ca_crt, ca_key=ca_key, server_crt=crt, server_key=key,
               cert_dir=cert_dir)


def make_pki_dockgate(directory, binary) -> PKI:
    """The same PKI made by `dockgate cert generate` (CA + server cert with the same SANs)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    args = [binary, "cert", "generate", "--out", d]
    for san in SERVER_SANS:
        kind, value = san.split(":", 1)
        args += ["--ip" if kind == "IP" else "--dns", value]
    run(args)
    cert_dir = d / "certdir"
    cert_dir.mkdir(exist_ok=True)
    shutil.copyfile(d / "ca.crt", cert_dir / "ca.crt")
    return PKI(dir=d, ca_crt=d / "ca.crt", ca_key=d / "ca.key", server_crt=d / "server.crt",
               server_key=d / "server.key", cert_dir=cert_dir)
