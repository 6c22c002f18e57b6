//! The fast lane's HTTP/1.1 wire: which request heads it takes, how a
//! backend answer is framed, and a chunked body's data. Pure: bytes in,
//! values out; anything unusual is left to pingora (`Head::Pass`).

use crate::proxy::edits::UpstreamHeaders;
use bytes::{Buf, BytesMut};
use http::{Method, Version};
use pingora::http::ResponseHeader;
use thiserror::Error;

/// The longest request head the lane reads before passing it on.
pub const MAX_HEAD: usize = 8 << 10;
/// The longest backend answer head it reads.
pub const MAX_ANSWER_HEAD: usize = 64 << 10;
const MAX_HEADERS: usize = 64;

// Returned once per head and matched at once: boxing the large variant
// would cost an allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Head {
    /// More bytes needed.
    Partial,
    /// A head the lane answers: its length in the buffer and its parts.
    Take {
        len: usize,
        parts: http::request::Parts,
    },
    /// Anything else (bodies, upgrades, other endpoints, malformed heads):
    /// pingora's, which also renders the errors.
    Pass,
}

/// A bodiless HTTP/1.1 GET or HEAD of a manifest, in origin form, with
/// headers the `http` crate accepts. Everything else passes.
pub fn request(buf: &[u8]) -> Head {
    let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Request::new(&mut h);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Head::Partial,
        _ => return Head::Pass,
    };
    // Bare-LF line ends are legal to accept, and pingora's to judge.
    let crlf = buf[..len]
        .iter()
        .enumerate()
        .all(|(i, &c)| c != b'\n' || (i > 0 && buf[i - 1] == b'\r'));
    if !crlf {
        return Head::Pass;
    }
    let method = match r.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Head::Pass,
    };
    let Some(path) = r
        .path
        .filter(|p| p.starts_with('/') && p.contains("/manifests/"))
    else {
        return Head::Pass;
    };
    if r.version != Some(1) {
        return Head::Pass;
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.version = Version::HTTP_11;
    parts.uri = match path.parse() {
        Ok(u) => u,
        Err(_) => return Head::Pass,
    };
    parts.headers.reserve(r.headers.len());
    for h in r.headers.iter() {
        let n = h.name;
        let framing = [
            "content-length",
            "transfer-encoding",
            "expect",
            "upgrade",
            "te",
        ]
        .iter()
        .any(|f| n.eq_ignore_ascii_case(f));
        let closing =
            n.eq_ignore_ascii_case("connection") && !h.value.eq_ignore_ascii_case(b"keep-alive");
        if framing || closing {
            return Head::Pass;
        }
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(n.as_bytes()),
            http::HeaderValue::from_bytes(h.value),
        ) else {
            return Head::Pass;
        };
        parts.headers.append(name, value);
    }
    Head::Take { len, parts }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("the backend's answer head is malformed")]
    BadHead,
    #[error("the backend's answer head is larger than {MAX_ANSWER_HEAD} bytes")]
    HeadTooLarge,
    #[error("the backend's answer has conflicting Content-Length values")]
    BadLength,
    #[error("the backend's chunked body is malformed")]
    BadChunk,
    #[error("the request for the backend would not be a valid head")]
    BadRequest,
}

/// Where a backend answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    Length(usize),
    Chunked,
    /// Until the backend closes.
    Close,
}

#[allow(clippy::large_enum_variant)] // as `Head`
#[derive(Debug)]
pub enum Answer {
    Partial,
    /// An interim `1xx` head of this length, to skip.
    Interim(usize),
    Final {
        len: usize,
        head: ResponseHeader,
        framing: Framing,
    },
}

/// A backend answer head; `head_request`: the request was a HEAD.
pub fn answer(buf: &[u8], head_request: bool) -> Result<Answer, WireError> {
    let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut h);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_ANSWER_HEAD => return Ok(Answer::Partial),
        Ok(httparse::Status::Partial) => return Err(WireError::HeadTooLarge),
        Err(_) => return Err(WireError::BadHead),
    };
    let status = r.code.ok_or(WireError::BadHead)?;
    if (100..200).contains(&status) && status != 101 {
        return Ok(Answer::Interim(len));
    }
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = http::StatusCode::from_u16(status).map_err(|_| WireError::BadHead)?;
    parts.headers.reserve(r.headers.len());
    let (mut length, mut chunked, mut coded) = (None, false, false);
    for h in r.headers.iter() {
        let n = h.name;
        if n.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(WireError::BadLength)?;
            match length {
                Some(l) if l != v => return Err(WireError::BadLength),
                // A repeated equal value: forwarded once.
                Some(_) => continue,
                None => length = Some(v),
            }
        } else if n.eq_ignore_ascii_case("transfer-encoding") {
            coded = true;
            // The last coding decides; only chunked ends in-band.
            chunked = h
                .value
                .rsplit(|c| *c == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
        // Hop-by-hop: the client's connection is framed by dockgate.
        let hop = crate::upstream::HOP_BY_HOP
            .iter()
            .any(|x| n.eq_ignore_ascii_case(x));
        if !hop {
            let name =
                http::HeaderName::from_bytes(n.as_bytes()).map_err(|_| WireError::BadHead)?;
            let value = http::HeaderValue::from_bytes(h.value).map_err(|_| WireError::BadHead)?;
            parts.headers.append(name, value);
        }
    }
    // No case map: header names go to the client lowercase, as over h2.
    let mut head = ResponseHeader::from(parts);
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Empty
    } else if coded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        length.map_or(Framing::Close, Framing::Length)
    };
    if coded {
        head.remove_header("content-length");
    }
    Ok(Answer::Final { len, head, framing })
}

/// Takes a chunked body's data out of the bytes read so far.
#[derive(Debug, Default)]
pub struct Dechunk {
    state: Chunk,
}

#[derive(Debug, Default, Clone, Copy)]
enum Chunk {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailer,
}

impl Dechunk {
    /// Moves the data in `buf` to `out`; `Ok(true)` once the body ended.
    pub fn feed(&mut self, buf: &mut BytesMut, out: &mut BytesMut) -> Result<bool, WireError> {
        loop {
            match self.state {
                Chunk::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        buf.advance(n);
                        self.state = if size == 0 {
                            Chunk::Trailer
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) => return Ok(false),
                    Err(_) => return Err(WireError::BadChunk),
                },
                Chunk::Data(left) => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let take = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    out.extend_from_slice(&buf[..take]);
                    buf.advance(take);
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    };
                }
                Chunk::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(false);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(WireError::BadChunk);
                    }
                    buf.advance(2);
                    self.state = Chunk::Size;
                }
                Chunk::Trailer => {
                    let Some(at) = buf.windows(2).position(|w| w == b"\r\n") else {
                        return Ok(false);
                    };
                    buf.advance(at + 2);
                    if at == 0 {
                        return Ok(true);
                    }
                }
            }
        }
    }
}

/// The backend's request head, written straight from the client's: the
/// request line, the headers in `h.set`, then the client's other headers
/// minus hop-by-hop ones. The same edits `edits::upstream_request` makes
/// on pingora's path, without building a second header map.
pub fn backend_request(
    method: &Method,
    target: &str,
    client: &http::HeaderMap,
    h: &UpstreamHeaders<'_>,
) -> Result<Vec<u8>, WireError> {
    // The target and the set values come from dockgate (a routed path,
    // the Host the client sent): still checked, as parsing them did.
    let visible = |s: &str| s.bytes().all(|c| c.is_ascii_graphic());
    let value_ok = |s: &str| s.bytes().all(|c| c == b'\t' || (c >= 0x20 && c != 0x7f));
    if !target.starts_with('/') || !visible(target) || !h.set.iter().all(|(_, v)| value_ok(v)) {
        return Err(WireError::BadRequest);
    }
    let mut out = Vec::with_capacity(1024);
    for part in [method.as_str(), " ", target, " HTTP/1.1\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    for (k, v) in &h.set {
        line(&mut out, k.as_bytes(), v.as_bytes());
    }
    for (k, v) in client {
        let n = k.as_str();
        let replaced = h.set.iter().any(|(s, _)| s.eq_ignore_ascii_case(n));
        let hop = crate::upstream::HOP_BY_HOP.contains(&n);
        if replaced || hop || (h.drop_authorization && k == http::header::AUTHORIZATION) {
            continue;
        }
        line(&mut out, n.as_bytes(), v.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// An answer to the client on the wire: the status line, the head's
/// headers, `Date` and `Connection` as pingora's HTTP/1.1 server writes
/// them (a `Date` in the head is replaced), then the body.
pub fn answer_bytes(head: &ResponseHeader, date: &[u8], close: bool, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + body.len());
    let s = head.status;
    for part in [
        "HTTP/1.1 ",
        s.as_str(),
        " ",
        s.canonical_reason().unwrap_or(""),
        "\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    for (k, v) in &head.headers {
        if k != http::header::DATE && k != http::header::CONNECTION {
            line(&mut out, k.as_str().as_bytes(), v.as_bytes());
        }
    }
    line(&mut out, b"date", date);
    let connection: &[u8] = if close { b"close" } else { b"keep-alive" };
    line(&mut out, b"connection", connection);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(raw: &str) -> Option<(usize, http::request::Parts)> {
        match request(raw.as_bytes()) {
            Head::Take { len, parts } => Some((len, parts)),
            _ => None,
        }
    }

    #[test]
    fn request_heads_taken_or_passed() {
        let m = "/v2/r/app/manifests/latest";
        let taken = [
            format!("GET {m} HTTP/1.1\r\nHost: h\r\n\r\n"),
            format!("HEAD {m} HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"),
            format!("GET {m}?x=1 HTTP/1.1\r\nHost: h\r\nAccept: a, b\r\n\r\n"),
        ];
        for raw in &taken {
            let (len, p) = take(raw).unwrap_or_else(|| panic!("taken: {raw:?}"));
            assert_eq!(len, raw.len(), "{raw:?}");
            assert_eq!(p.headers.get("host").map(|v| v.as_bytes()), Some(&b"h"[..]));
        }
        let passed = [
            format!("PUT {m} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
            format!("DELETE {m} HTTP/1.1\r\nHost: h\r\n\r\n"),
            format!("GET {m} HTTP/1.0\r\nHost: h\r\n\r\n"),
            "GET /v2/r/app/blobs/sha256:00 HTTP/1.1\r\nHost: h\r\n\r\n".to_string(),
            "GET /v2/ HTTP/1.1\r\nHost: h\r\n\r\n".to_string(),
            format!("GET http://h{m} HTTP/1.1\r\nHost: h\r\n\r\n"),
            format!("GET {m} HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"),
            format!("GET {m} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
            format!("GET {m} HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n"),
            format!("GET {m} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
            format!("GET {m} HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"),
            format!("GET {m} HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n"),
            format!("GET {m} HTTP/1.1\r\nHo st: h\r\n\r\n"),
            format!("GET {m} HTTP/1.1\nHost: h\n\n"),
            format!("GET {m} HTTP/1.1\r\nHost: h\n\r\n"),
        ];
        for raw in &passed {
            assert!(
                matches!(request(raw.as_bytes()), Head::Pass | Head::Partial)
                    && !matches!(request(raw.as_bytes()), Head::Take { .. }),
                "passed: {raw:?}"
            );
        }
        assert!(matches!(
            request(b"GET /v2/r/app/manifests/x HTTP/1.1\r\nHo"),
            Head::Partial
        ));
        let long = format!("GET {m} HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(request(long.as_bytes()), Head::Pass));
    }

    #[test]
    fn a_pipelined_head_is_measured_alone() {
        let one = "GET /v2/r/a/manifests/1 HTTP/1.1\r\nHost: h\r\n\r\n";
        let two = format!("{one}GET /v2/r/a/manifests/2 HTTP/1.1\r\n");
        assert_eq!(take(&two).map(|t| t.0), Some(one.len()));
    }

    fn final_of(raw: &str, head: bool) -> Result<(usize, u16, Framing), WireError> {
        match answer(raw.as_bytes(), head)? {
            Answer::Final { len, head, framing } => Ok((len, head.status.as_u16(), framing)),
            other => panic!("not final: {other:?}"),
        }
    }

    #[test]
    fn answers_on_the_wire() {
        let mut head = ResponseHeader::build(404, None).unwrap();
        head.insert_header("Content-Type", "application/json")
            .unwrap();
        head.insert_header("Date", "from the backend").unwrap();
        head.insert_header("Content-Length", "2").unwrap();
        let cases = [(false, "keep-alive"), (true, "close")];
        for (close, connection) in cases {
            let out = answer_bytes(&head, b"Tue, 01 Dec 2026 15:00:00 GMT", close, b"{}");
            let want = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\
                 content-length: 2\r\ndate: Tue, 01 Dec 2026 15:00:00 GMT\r\n\
                 connection: {connection}\r\n\r\n{{}}"
            );
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn answer_framing() {
        let cases: &[(&str, bool, Result<Framing, WireError>)] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
                false,
                Ok(Framing::Length(12)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
                true,
                Ok(Framing::Empty),
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\n",
                false,
                Ok(Framing::Empty),
            ),
            ("HTTP/1.1 204 No Content\r\n\r\n", false, Ok(Framing::Empty)),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Ok(Framing::Chunked),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
                false,
                Ok(Framing::Chunked),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                Ok(Framing::Close),
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false, Ok(Framing::Close)),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                false,
                Ok(Framing::Length(1)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false,
                Err(WireError::BadLength),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                false,
                Err(WireError::BadLength),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
                false,
                Err(WireError::BadLength),
            ),
            ("HTTP/1.1 2x0 OK\r\n\r\n", false, Err(WireError::BadHead)),
        ];
        for (raw, head, want) in cases {
            let got = final_of(raw, *head).map(|(len, _, f)| {
                assert_eq!(len, raw.len());
                f
            });
            assert_eq!(&got, want, "{raw:?}");
        }
        assert!(matches!(
            answer(b"HTTP/1.1 200 OK\r\nConte", false),
            Ok(Answer::Partial)
        ));
        let cont = "HTTP/1.1 100 Continue\r\n\r\n";
        assert!(
            matches!(answer(cont.as_bytes(), false), Ok(Answer::Interim(n)) if n == cont.len())
        );
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_ANSWER_HEAD));
        assert_eq!(
            answer(huge.as_bytes(), false).err(),
            Some(WireError::HeadTooLarge)
        );
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let raw = "HTTP/1.1 200 OK\r\nConnection: close\r\nKeep-Alive: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\nDocker-Content-Digest: d\r\n\r\n";
        let Ok(Answer::Final { head, .. }) = answer(raw.as_bytes(), false) else {
            panic!("final")
        };
        let names: Vec<_> = head.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["docker-content-digest"]);
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n";
        let Ok(Answer::Final { head, .. }) = answer(raw.as_bytes(), false) else {
            panic!("final")
        };
        let lengths: Vec<_> = head.headers.get_all("content-length").iter().collect();
        assert_eq!(lengths, ["4"], "a repeated length goes on once");
    }

    #[test]
    fn chunked_bodies_in_any_split() {
        let raw = b"4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for split in 0..raw.len() {
            let mut d = Dechunk::default();
            let (mut buf, mut out) = (BytesMut::from(&raw[..split]), BytesMut::new());
            let early = d.feed(&mut buf, &mut out);
            buf.extend_from_slice(&raw[split..]);
            let done = match early {
                Ok(true) => Ok(true),
                _ => d.feed(&mut buf, &mut out),
            };
            assert!(early.is_ok() && done == Ok(true), "split {split}");
            assert_eq!(&out[..], b"abcdefg", "split {split}");
            assert_eq!(&buf[..], b"NEXT", "split {split}: what follows stays");
        }
        for bad in [&b"zz\r\n"[..], b"2\r\nabX\r\n"] {
            let mut d = Dechunk::default();
            let r = d.feed(&mut BytesMut::from(bad), &mut BytesMut::new());
            assert_eq!(r, Err(WireError::BadChunk), "{bad:?}");
        }
    }
}
