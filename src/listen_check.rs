//! Checking the listen addresses before pingora binds them. pingora retries
//! a taken address for about 28 s, then panics in the listener thread and
//! keeps running without it, so systemd never restarts it. A probe bind at
//! start turns that into an immediate exit naming the address and, when
//! /proc tells, the process that holds it.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{addr}: address already in use{}", holder_text(holder))]
    InUse {
        addr: SocketAddr,
        holder: Option<String>,
    },
    #[error("{addr}: cannot listen: {source}")]
    Other {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

fn holder_text(h: &Option<String>) -> String {
    h.as_ref().map(|h| format!(" (by {h})")).unwrap_or_default()
}

/// What to do about one address.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    Free,
    /// IPv6 loopback on a machine without IPv6: serve the other listeners.
    NoIpv6,
}

/// Binds `addr` for a moment and lets it go again.
pub fn probe(addr: SocketAddr) -> Result<Probe, ListenError> {
    match TcpListener::bind(addr) {
        Ok(_) => Ok(Probe::Free),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(ListenError::InUse {
            addr,
            holder: holder(addr.port()),
        }),
        Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable && is_v6_loopback(addr.ip()) => {
            Ok(Probe::NoIpv6)
        }
        Err(source) => Err(ListenError::Other { addr, source }),
    }
}

fn is_v6_loopback(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.is_loopback())
}

/// `dockgate (pid 1234)` for the process listening on TCP `port`, if /proc
/// shows it (another user's process needs root to see).
pub fn holder(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for proc_dir in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = proc_dir.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                let comm = std::fs::read_to_string(proc_dir.path().join("comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_default();
                return Some(format!("{comm} (pid {pid})"));
            }
        }
    }
    None
}

/// Socket inodes of `LISTEN` entries on `port` in a /proc/net/tcp{,6} table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let listening = *f.get(3)? == LISTEN;
            let same = u16::from_str_radix(local_port, 16).ok()? == port;
            (listening && same).then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1543 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1543 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn finds_only_listening_sockets_on_the_port() {
        assert_eq!(listening_inodes(TABLE, 5443), [4242]);
        assert_eq!(listening_inodes(TABLE, 5000), [4444]);
        assert!(listening_inodes(TABLE, 80).is_empty());
        assert!(listening_inodes("garbage\nmore garbage", 80).is_empty());
    }

    #[test]
    fn a_taken_port_names_its_holder() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        match probe(addr) {
            Err(ListenError::InUse { holder, .. }) => {
                let me = std::process::id().to_string();
                let h = holder.unwrap_or_default();
                assert!(h.contains(&me), "{h}");
            }
            other => panic!("{other:?}"),
        }
        drop(taken);
        assert_eq!(probe(addr).unwrap(), Probe::Free);
        let msg = ListenError::InUse {
            addr,
            holder: Some("nginx (pid 1)".into()),
        }
        .to_string();
        assert!(msg.starts_with(&format!("{addr}: address already in use (by nginx")));
    }
}
