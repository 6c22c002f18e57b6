//! PROXY protocol v2 from trusted proxies (HAProxy `send-proxy-v2`): read
//! before the TLS handshake, only from peers in `[policy] trusted_proxies`;
//! the address it carries becomes the connection's peer. A trusted peer
//! that sends no PROXY header is served as a direct client; an untrusted
//! peer's bytes are never read as one.

use crate::state::Shared;
use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use pingora::{Error, ErrorType, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The v2 signature, then version/command, family, length.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\x00\r\nQUIT\n";
const HEADER: usize = 16;
/// Addresses plus TLVs; HAProxy's are far below this.
const MAX_BODY: usize = 2048;
const READ_WITHIN: Duration = Duration::from_secs(10);

/// What a v2 header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// Not a v2 header: the bytes are the client's own.
    Absent,
    /// `LOCAL` (the proxy's health check) or an unknown family: keep the peer.
    Local,
    /// The client's address as the proxy saw it.
    Proxied(SocketAddr),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyV2Error {
    #[error("PROXY v2: unsupported version/command byte {0:#04x}")]
    Version(u8),
    #[error("PROXY v2: header length {0} out of range")]
    Length(usize),
    #[error("PROXY v2: address block too short for its family")]
    Short,
}

/// The body length a 16-byte header announces, or Absent.
pub fn announced(head: &[u8; HEADER]) -> Result<Option<usize>, ProxyV2Error> {
    if head[..12] != SIGNATURE {
        return Ok(None);
    }
    if head[12] >> 4 != 2 || head[12] & 0x0f > 1 {
        return Err(ProxyV2Error::Version(head[12]));
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > MAX_BODY {
        return Err(ProxyV2Error::Length(len));
    }
    Ok(Some(len))
}

/// Parses a whole header (16 bytes + body).
pub fn parse(head: &[u8; HEADER], body: &[u8]) -> Result<Header, ProxyV2Error> {
    if announced(head)?.is_none() {
        return Ok(Header::Absent);
    }
    if head[12] & 0x0f == 0 {
        return Ok(Header::Local);
    }
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match head[13] >> 4 {
        1 => {
            let a = body.get(..12).ok_or(ProxyV2Error::Short)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Ok(Header::Proxied(SocketAddr::new(
                IpAddr::V4(ip),
                port(&a[8..10]),
            )))
        }
        2 => {
            let a = body.get(..36).ok_or(ProxyV2Error::Short)?;
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[..16]);
            Ok(Header::Proxied(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(o)),
                port(&a[32..34]),
            )))
        }
        _ => Ok(Header::Local),
    }
}

/// The pre-TLS step on every listener.
pub struct ProxyV2 {
    pub shared: Arc<Shared>,
}

fn bad(e: impl std::fmt::Display) -> Box<Error> {
    Error::explain(ErrorType::InvalidHTTPHeader, e.to_string())
}

#[async_trait]
impl PreTlsProcess for ProxyV2 {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().cloned());
        let Some(PeerAddr::Inet(peer)) = peer else {
            return Ok(());
        };
        let snap = self.shared.snapshot();
        let trusted = &snap.cfg.policy.trusted_proxies;
        if trusted.is_empty() || !trusted.contains(peer.ip()) {
            return Ok(());
        }
        let mut head = [0u8; HEADER];
        let read = async {
            stream.read_exact(&mut head).await?;
            let len = match announced(&head) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok::<_, std::io::Error>(None),
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            };
            let mut body = vec![0u8; len];
            stream.read_exact(&mut body).await?;
            Ok(Some(body))
        };
        let body = match tokio::time::timeout(READ_WITHIN, read).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(bad(e)),
            Err(_) => return Err(bad("PROXY v2: header not received in time")),
        };
        let Some(body) = body else {
            // A trusted peer speaking TLS directly.
            stream.rewind(&head);
            return Ok(());
        };
        if let Header::Proxied(client) = parse(&head, &body).map_err(bad)? {
            let old = stream.get_socket_digest();
            let d = SocketDigest::from_raw_fd(stream.as_raw_fd());
            let _ = d.peer_addr.set(Some(PeerAddr::Inet(client)));
            if let Some(local) = old.as_ref().and_then(|o| o.local_addr().cloned()) {
                let _ = d.local_addr.set(Some(local));
            }
            stream.set_socket_digest(d);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> ([u8; HEADER], Vec<u8>) {
        let mut h = [0u8; HEADER];
        h[..12].copy_from_slice(&SIGNATURE);
        h[12] = 0x20 | cmd;
        h[13] = fam;
        h[14..16].copy_from_slice(&(body.len() as u16).to_be_bytes());
        (h, body.to_vec())
    }

    #[test]
    fn headers() {
        let (h, b) = v2(
            1,
            0x11,
            &[203, 0, 113, 5, 127, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb],
        );
        assert_eq!(
            parse(&h, &b),
            Ok(Header::Proxied("203.0.113.5:8080".parse().unwrap()))
        );
        let mut six = vec![0u8; 36];
        six[15] = 1;
        six[32..34].copy_from_slice(&443u16.to_be_bytes());
        let (h, b) = v2(1, 0x21, &six);
        assert_eq!(
            parse(&h, &b),
            Ok(Header::Proxied("[::1]:443".parse().unwrap()))
        );
        let (h, b) = v2(0, 0x00, &[]);
        assert_eq!(parse(&h, &b), Ok(Header::Local));
        let (h, b) = v2(1, 0x11, &[1, 2, 3]);
        assert_eq!(parse(&h, &b), Err(ProxyV2Error::Short));
        let mut tls = [0u8; HEADER];
        tls[0] = 0x16;
        assert_eq!(announced(&tls), Ok(None));
        let (mut h, _) = v2(1, 0x11, &[]);
        h[12] = 0x11;
        assert!(announced(&h).is_err(), "v1 bits in a v2 signature");
        h[12] = 0x21;
        h[14..16].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(announced(&h), Err(ProxyV2Error::Length(4000)));
    }
}
