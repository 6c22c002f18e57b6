//! One structured line per request, JSON or logfmt, to stdout (journald)
//! or a file. It carries no credentials: only the user name.

use crate::config::LogFormat;
use serde::Serialize;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Serialize, Default)]
pub struct Record<'a> {
    pub time: String,
    pub request_id: &'a str,
    pub client: &'a str,
    pub user: &'a str,
    /// The user name of credentials that were refused (never the password).
    pub attempted_user: &'a str,
    /// The `[auth.workload]` whose token was spent (token requests).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub workload: &'a str,
    pub user_agent: &'a str,
    pub repository: &'a str,
    pub image: &'a str,
    /// Tag or digest.
    pub reference: &'a str,
    pub operation: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: f64,
    pub backend: &'a str,
    pub backend_status: Option<u16>,
    /// The policy rule that refused the request, or empty.
    pub refused_by: &'a str,
}

/// Lines are batched in a buffer: under load one `write(2)` carries many
/// of them (a per-line write was ~4% of a small request's CPU). A line is
/// flushed at once when it is the only request in flight, and a timer
/// flushes the rest, so a quiet gateway's log is always current.
pub struct AccessLog {
    format: LogFormat,
    out: Mutex<BufWriter<Box<dyn Write + Send>>>,
}

const BUFFER: usize = 64 << 10;

impl AccessLog {
    pub fn open(format: LogFormat, path: Option<&Path>) -> std::io::Result<Self> {
        let sink: Box<dyn Write + Send> = match path {
            Some(p) => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
            None => Box::new(std::io::stdout()),
        };
        Ok(Self {
            format,
            out: Mutex::new(BufWriter::with_capacity(BUFFER, sink)),
        })
    }

    pub fn write(&self, r: &Record, flush_now: bool) {
        // Sized for a typical line: no regrowth while serializing.
        let mut line = Vec::with_capacity(512);
        match self.format {
            LogFormat::Json => json(r, &mut line),
            LogFormat::Logfmt => line.extend_from_slice(logfmt(r).as_bytes()),
        }
        line.push(b'\n');
        let Ok(mut out) = self.out.lock() else {
            return;
        };
        // Whole lines only: BufWriter writes out a line that does not fit.
        let mut res = out.write_all(&line);
        if flush_now && res.is_ok() {
            res = out.flush();
        }
        if let Err(e) = res {
            tracing::warn!(error = %e, "access log write failed");
        }
    }

    pub fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            if let Err(e) = out.flush() {
                tracing::warn!(error = %e, "access log flush failed");
            }
        }
    }
}

/// The record as `serde_json` writes it, field by field: a third of the
/// instructions of the derived serializer, on every request's path
/// (callgrind, bench/README.md "The fast lane"). `json_as_serde` holds
/// the two to the same bytes.
fn json(r: &Record, out: &mut Vec<u8>) {
    let strings = [
        (&b"{\"time\":"[..], r.time.as_str()),
        (b",\"request_id\":", r.request_id),
        (b",\"client\":", r.client),
        (b",\"user\":", r.user),
        (b",\"attempted_user\":", r.attempted_user),
        (b",\"workload\":", r.workload),
        (b",\"user_agent\":", r.user_agent),
        (b",\"repository\":", r.repository),
        (b",\"image\":", r.image),
        (b",\"reference\":", r.reference),
        (b",\"operation\":", r.operation),
        (b",\"method\":", r.method),
    ];
    for (k, v) in strings {
        if k == b",\"workload\":" && v.is_empty() {
            continue;
        }
        out.extend_from_slice(k);
        string(out, v);
    }
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(n.format(r.status).as_bytes());
    out.extend_from_slice(b",\"bytes_in\":");
    out.extend_from_slice(n.format(r.bytes_in).as_bytes());
    out.extend_from_slice(b",\"bytes_out\":");
    out.extend_from_slice(n.format(r.bytes_out).as_bytes());
    out.extend_from_slice(b",\"duration_ms\":");
    if r.duration_ms.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(r.duration_ms).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"backend\":");
    string(out, r.backend);
    out.extend_from_slice(b",\"backend_status\":");
    match r.backend_status {
        Some(s) => out.extend_from_slice(n.format(s).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"refused_by\":");
    string(out, r.refused_by);
    out.push(b'}');
}

/// A JSON string, escaped as `serde_json` escapes it.
fn string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let plain = |c: u8| c >= 0x20 && c != b'"' && c != b'\\';
    out.push(b'"');
    if b.iter().all(|&c| plain(c)) {
        out.extend_from_slice(b);
    } else {
        for &c in b {
            let short = match c {
                b'"' => b'"',
                b'\\' => b'\\',
                b'\n' => b'n',
                b'\r' => b'r',
                b'\t' => b't',
                0x08 => b'b',
                0x0c => b'f',
                0..=0x1f => b'u',
                _ => {
                    out.push(c);
                    continue;
                }
            };
            out.push(b'\\');
            out.push(short);
            if short == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
            }
        }
    }
    out.push(b'"');
}

fn logfmt(r: &Record) -> String {
    let v = serde_json::to_value(r).unwrap_or_default();
    let Some(obj) = v.as_object() else {
        return String::new();
    };
    obj.iter()
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            if s.is_empty() || s.contains([' ', '"', '=']) {
                format!("{k}={}", serde_json::Value::String(s))
            } else {
                format!("{k}={s}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_as_serde() {
        let odd = "q\"b\\s\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f} é ☃ \u{10ffff}";
        let records = [
            Record::default(),
            Record {
                time: "2026-12-01T15:00:00.123456789Z".into(),
                request_id: "0123abcd",
                client: "[::1]:443",
                user: odd,
                attempted_user: "x",
                workload: "ci/job",
                user_agent: odd,
                repository: "docker-local",
                image: "library/app",
                reference: "sha256:00",
                operation: "manifest_get",
                method: "GET",
                status: 200,
                bytes_in: u64::MAX,
                bytes_out: 1234,
                duration_ms: 0.001,
                backend: "b",
                backend_status: Some(200),
                refused_by: "schema1_pull",
            },
            Record {
                duration_ms: 1234.5,
                backend_status: Some(0),
                ..Record::default()
            },
            Record {
                duration_ms: 3.0,
                ..Record::default()
            },
            Record {
                duration_ms: 86_400_000.0,
                ..Record::default()
            },
            Record {
                duration_ms: f64::NAN,
                ..Record::default()
            },
        ];
        for r in &records {
            let mut ours = Vec::new();
            json(r, &mut ours);
            let theirs = serde_json::to_vec(r).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }

    #[test]
    fn formats() {
        let r = Record {
            time: "t".into(),
            client: "1.2.3.4:5",
            user: "",
            repository: "docker-local",
            image: "a b",
            operation: "manifest_put",
            method: "PUT",
            status: 201,
            ..Record::default()
        };
        let l = logfmt(&r);
        assert!(l.contains("repository=docker-local"), "{l}");
        assert!(l.contains("image=\"a b\""), "{l}");
        assert!(l.contains("user=\"\""), "{l}");
        assert!(l.contains("backend_status=\"\""), "{l}");
        let j: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(j["status"], 201);
    }
}
