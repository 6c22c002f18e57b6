//! Where each registry client looks for a per-registry CA, as text to
//! print after `dockgate cert generate`.

use std::fmt::Write;
use std::path::Path;

use crate::tls::verdict::DialTarget;

/// Instructions to trust `ca_cert` for the registry at `host_port`
/// (`HOST`, `HOST:PORT`, `IP:PORT` or `[IPv6]:PORT`). The directory names
/// must be the registry address exactly as it appears in image names.
pub fn trust_instructions(ca_cert: &Path, host_port: &str) -> String {
    // Normalise `::1` to `[::1]`; fall back to the text as given.
    let addr = DialTarget::parse(host_port)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| host_port.trim().to_string());
    let ca = ca_cert.display();
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "\
Trust the dockgate CA on every machine that pulls from or pushes to {addr}.
Use the registry address exactly as it appears in image names ({addr}/repo/image:tag).

docker (dockerd; read on each pull, no restart needed):
  sudo mkdir -p /etc/docker/certs.d/{addr}
  sudo cp {ca} /etc/docker/certs.d/{addr}/ca.crt

podman, skopeo, buildah (containers/image):
  sudo mkdir -p /etc/containers/certs.d/{addr}
  sudo cp {ca} /etc/containers/certs.d/{addr}/ca.crt
  (rootless users may use ~/.config/containers/certs.d/{addr}/ca.crt instead)

containerd 1.5+ (CRI/kubelet, nerdctl; its registry config_path must include
/etc/containerd/certs.d, the default in containerd 2.x; ctr needs --hosts-dir /etc/containerd/certs.d):
  sudo mkdir -p /etc/containerd/certs.d/{addr}
  sudo cp {ca} /etc/containerd/certs.d/{addr}/ca.crt
  and write /etc/containerd/certs.d/{addr}/hosts.toml:
    server = \"https://{addr}\"

    [host.\"https://{addr}\"]
      capabilities = [\"pull\", \"resolve\", \"push\"]
      ca = \"/etc/containerd/certs.d/{addr}/ca.crt\"

System trust store (Debian/Ubuntu: curl, oras and other programs using the system roots):
  sudo cp {ca} /usr/local/share/ca-certificates/dockgate-ca.crt
  sudo update-ca-certificates
"
    );
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn names_every_client_location_for_the_address() {
        let cases = [
            ("10.0.0.5:5443", "10.0.0.5:5443"),
            ("registry.example.com", "registry.example.com"),
            ("[::1]:5443", "[::1]:5443"),
            ("::1", "[::1]"),
        ];
        for (input, addr) in cases {
            let t = trust_instructions(Path::new("/srv/certs/ca.crt"), input);
            for want in [
                format!("sudo cp /srv/certs/ca.crt /etc/docker/certs.d/{addr}/ca.crt"),
                format!("sudo cp /srv/certs/ca.crt /etc/containers/certs.d/{addr}/ca.crt"),
                format!("/etc/containerd/certs.d/{addr}/hosts.toml"),
                format!("server = \"https://{addr}\""),
                format!("[host.\"https://{addr}\"]"),
                format!("ca = \"/etc/containerd/certs.d/{addr}/ca.crt\""),
                "sudo cp /srv/certs/ca.crt /usr/local/share/ca-certificates/dockgate-ca.crt".into(),
                "sudo update-ca-certificates".into(),
            ] {
                assert!(t.contains(&want), "{input}: missing {want:?} in\n{t}");
            }
        }
    }
}
