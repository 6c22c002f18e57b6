//! One structured line per request, JSON or logfmt, to stdout (journald)
//! or a file. It carries no credentials: only the user name.

use crate::config::LogFormat;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Serialize, Default)]
pub struct Record<'a> {
    pub time: String,
    pub client: String,
    pub user: &'a str,
    pub repository: &'a str,
    pub image: &'a str,
    pub operation: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: f64,
    pub backend: &'a str,
    pub backend_status: Option<u16>,
}

pub struct AccessLog {
    format: LogFormat,
    file: Option<Mutex<File>>,
}

impl AccessLog {
    pub fn open(format: LogFormat, path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => Some(Mutex::new(
                OpenOptions::new().create(true).append(true).open(p)?,
            )),
            None => None,
        };
        Ok(Self { format, file })
    }

    pub fn write(&self, r: &Record) {
        let mut line = match self.format {
            LogFormat::Json => serde_json::to_string(r).unwrap_or_default(),
            LogFormat::Logfmt => logfmt(r),
        };
        line.push('\n');
        // One write per line keeps lines whole when threads interleave.
        let res = match &self.file {
            Some(f) => match f.lock() {
                Ok(mut f) => f.write_all(line.as_bytes()),
                Err(_) => Ok(()),
            },
            None => std::io::stdout().lock().write_all(line.as_bytes()),
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "access log write failed");
        }
    }
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
    fn formats() {
        let r = Record {
            time: "t".into(),
            client: "1.2.3.4:5".into(),
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
