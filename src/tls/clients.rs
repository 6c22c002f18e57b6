//! The trust directory for clients: dockgate's CA, and nothing else, laid
//! out like `certs.d` (`<dir>/<host:port>/ca.crt`, one per address clients
//! dial), so one copy command serves docker, containerd and podman/skopeo/
//! buildah, and `--cert-dir <dir>/<host:port>` works as it is. The cert
//! directory itself holds private keys, which containers/image would read
//! as client certificates ("missing client certificate ca.cert for key
//! ca.key"), so clients must never be pointed at it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::tls::fsutil::{self, CERT_MODE};
use crate::tls::{Result, TlsError};

/// The trust directory's name inside the cert directory.
pub const CLIENTS_DIR: &str = "clients";

/// What `write_trust_dir` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustDir {
    pub dir: PathBuf,
    /// `host:port` entries, as clients write them in image names.
    pub addresses: Vec<String>,
}

/// Writes `ca_cert` as `<cert_dir>/clients/<addr>/ca.crt` for every
/// address, and removes address directories of earlier runs that hold
/// nothing but a `ca.crt`.
pub fn write_trust_dir(cert_dir: &Path, ca_cert: &Path, addresses: &[String]) -> Result<TrustDir> {
    let dir = cert_dir.join(CLIENTS_DIR);
    let ca = fsutil::read(ca_cert, "CA certificate")?;
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|source| TlsError::Io {
            path: p.to_path_buf(),
            action: "create directory",
            source,
        })
    };
    mkdir(&dir)?;
    // Absolute, so the printed copy commands work from any directory.
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    for addr in addresses {
        let sub = dir.join(addr);
        mkdir(&sub)?;
        fsutil::write_atomic(&sub.join("ca.crt"), &ca, CERT_MODE)?;
    }
    remove_stale(&dir, addresses);
    Ok(TrustDir {
        dir,
        addresses: addresses.to_vec(),
    })
}

/// Best effort: an address no longer served should not be trusted on.
fn remove_stale(dir: &Path, keep: &[String]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) || !e.path().is_dir() {
            continue;
        }
        let only_ca = std::fs::read_dir(e.path()).is_ok_and(|files| {
            files
                .flatten()
                .all(|f| f.file_name().to_str() == Some("ca.crt"))
        });
        if only_ca {
            let _ = std::fs::remove_file(e.path().join("ca.crt"));
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// The copy commands, one per client, printed at start.
impl fmt::Display for TrustDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.dir.display();
        let first = self
            .addresses
            .first()
            .map(String::as_str)
            .unwrap_or("HOST:PORT");
        writeln!(
            f,
            "Clients trust dockgate's CA from {d}: one <host:port>/ca.crt per address \
             ({}), laid out like certs.d and holding no keys.",
            self.addresses.join(", ")
        )?;
        writeln!(
            f,
            "Copy it where each client looks, as root on every machine that pulls or pushes:"
        )?;
        writeln!(f, "  docker:                   mkdir -p /etc/docker/certs.d && cp -r {d}/. /etc/docker/certs.d/")?;
        writeln!(f, "  podman, skopeo, buildah:  mkdir -p /etc/containers/certs.d && cp -r {d}/. /etc/containers/certs.d/")?;
        writeln!(
            f,
            "                            (or per command: --cert-dir {d}/{first})"
        )?;
        writeln!(f, "  containerd, nerdctl:      mkdir -p /etc/containerd/certs.d && cp -r {d}/. /etc/containerd/certs.d/")?;
        writeln!(f, "                            (its registry config_path must be /etc/containerd/certs.d)")?;
        writeln!(
            f,
            "  system store (curl, oras): cp {d}/{first}/ca.crt /usr/local/share/ca-certificates/dockgate-ca.crt && update-ca-certificates"
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::tls::testutil::TempDir;

    #[test]
    fn writes_only_the_ca_per_address_and_drops_stale_ones() {
        let tmp = TempDir::new("trust-dir");
        let ca = tmp.path().join("ca.crt");
        std::fs::write(&ca, "CA PEM").unwrap();
        let addrs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        write_trust_dir(tmp.path(), &ca, &addrs(&["127.0.0.1:5443", "old:5443"])).unwrap();
        // An operator's own file keeps its directory.
        let mine = tmp.path().join("clients/keep:1");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::write(mine.join("client.cert"), "x").unwrap();
        let t =
            write_trust_dir(tmp.path(), &ca, &addrs(&["127.0.0.1:5443", "[::1]:5443"])).unwrap();
        let clients = std::fs::canonicalize(tmp.path().join("clients")).unwrap();
        assert_eq!(t.dir, clients);
        for a in ["127.0.0.1:5443", "[::1]:5443"] {
            let files: Vec<_> = std::fs::read_dir(clients.join(a))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(files, ["ca.crt"], "{a}");
            assert_eq!(
                std::fs::read(clients.join(a).join("ca.crt")).unwrap(),
                b"CA PEM"
            );
        }
        assert!(!clients.join("old:5443").exists());
        assert!(mine.join("client.cert").exists());
        let text = t.to_string();
        for want in [
            format!("cp -r {}/. /etc/docker/certs.d/", clients.display()),
            format!("cp -r {}/. /etc/containers/certs.d/", clients.display()),
            format!("cp -r {}/. /etc/containerd/certs.d/", clients.display()),
            format!("--cert-dir {}/127.0.0.1:5443", clients.display()),
            "update-ca-certificates".to_string(),
        ] {
            assert!(text.contains(&want), "missing {want:?} in\n{text}");
        }
    }
}
