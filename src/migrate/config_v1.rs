//! The image config a schema1 manifest converts to, byte for byte what
//! containers/image (skopeo) writes: history[0]'s v1Compatibility as a map
//! of raw values, a few keys dropped, `rootfs` and `history` added, then
//! serialised the way Go's encoding/json does (sorted top-level keys, raw
//! values compacted in their own order, `<>&` and U+2028/9 escaped).

use super::schema1::Manifest;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("history[0]: v1Compatibility is not a JSON object: {0}")]
    NotObject(String),
    #[error("created {0:?} is not an RFC 3339 time")]
    BadTime(String),
    #[error("v1Compatibility {0}: {1}")]
    BadField(&'static str, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Schema2,
    Oci,
}

/// Keys containers/image deletes from the copied v1Compatibility.
const DROPPED: [&str; 6] = ["id", "parent", "parent_id", "layer_id", "throwaway", "Size"];

/// The config bytes for `m` with `diff_ids` (base first, non-throwaway only).
pub fn build(m: &Manifest, diff_ids: &[String], target: Target) -> Result<Vec<u8>, ConfigError> {
    let top = &m.entries[0];
    let value: Value =
        serde_json::from_str(&top.v1).map_err(|e| ConfigError::NotObject(e.to_string()))?;
    if !value.is_object() {
        return Err(ConfigError::NotObject("not an object".into()));
    }
    let docker_version = value
        .get("docker_version")
        .and_then(Value::as_str)
        .unwrap_or("");
    // Old Docker wrote configs moby no longer reads as is: containers/image
    // re-encodes them through its V1Image struct first.
    let mut fields: BTreeMap<String, String> =
        if !docker_version.is_empty() && version_less(docker_version, "1.8.3") {
            legacy::encode(&value)?
        } else {
            let raw: BTreeMap<String, Box<RawValue>> =
                serde_json::from_str(&top.v1).map_err(|e| ConfigError::NotObject(e.to_string()))?;
            raw.into_iter()
                .map(|(k, v)| (k, compact(v.get())))
                .collect()
        };
    for k in DROPPED {
        fields.remove(k);
    }
    let mut rootfs = String::from(r#"{"type":"layers""#);
    if !diff_ids.is_empty() || target == Target::Oci {
        rootfs.push_str(r#","diff_ids":["#);
        let ids: Vec<String> = diff_ids.iter().map(|d| string(d)).collect();
        rootfs.push_str(&ids.join(","));
        rootfs.push(']');
    }
    rootfs.push('}');
    fields.insert("rootfs".into(), rootfs);
    let mut history = Vec::with_capacity(m.entries.len());
    for e in m.entries.iter().rev() {
        let mut h = format!(r#"{{"created":{}"#, string(&go_time(e.created.as_deref())?));
        if !e.author.is_empty() {
            h.push_str(&format!(r#","author":{}"#, string(&e.author)));
        }
        let created_by = e.cmd.join(" ");
        if !created_by.is_empty() {
            h.push_str(&format!(r#","created_by":{}"#, string(&created_by)));
        }
        if !e.comment.is_empty() {
            h.push_str(&format!(r#","comment":{}"#, string(&e.comment)));
        }
        if e.throwaway {
            h.push_str(r#","empty_layer":true"#);
        }
        h.push('}');
        history.push(h);
    }
    fields.insert("history".into(), format!("[{}]", history.join(",")));
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", string(k)))
        .collect();
    Ok(format!("{{{}}}", body.join(",")).into_bytes())
}

/// A string as Go's encoder writes it (HTML-safe).
pub fn string(s: &str) -> String {
    let json = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    html_escape(&json)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Go's json.Compact with HTML escaping, for valid JSON text: whitespace
/// outside strings goes, strings keep their escapes, `<>&` get escaped.
pub fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            if escaped {
                escaped = false;
                out.push(c);
                continue;
            }
            match c {
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    out.push_str(&html_escape(&c.to_string()))
                }
                c => out.push(c),
            }
        } else {
            match c {
                ' ' | '\t' | '\n' | '\r' => {}
                '"' => {
                    in_string = true;
                    out.push(c);
                }
                c => out.push(c),
            }
        }
    }
    out
}

/// moby's versions.LessThan: dot-separated numbers, missing or
/// unparsable parts count as 0.
pub fn version_less(a: &str, b: &str) -> bool {
    let parts = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).copied().unwrap_or(0);
        let y = pb.get(i).copied().unwrap_or(0);
        if x != y {
            return x < y;
        }
    }
    false
}

/// A time as Go's time.Time marshals it (RFC 3339 with the shortest
/// fraction, `Z` for UTC); missing is the zero time.
pub fn go_time(s: Option<&str>) -> Result<String, ConfigError> {
    let Some(s) = s else {
        return Ok("0001-01-01T00:00:00Z".into());
    };
    let bad = || ConfigError::BadTime(s.to_string());
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4)
        && digits(5..7)
        && digits(8..10)
        && digits(11..13)
        && digits(14..16)
        && digits(17..19))
    {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut frac = "";
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(bad());
        }
        frac = &r[..n.min(9)];
        rest = &r[n..];
    }
    let zone = match rest {
        "Z" | "z" | "+00:00" | "-00:00" => "Z".to_string(),
        z if z.len() == 6
            && matches!(z.as_bytes()[0], b'+' | b'-')
            && z.as_bytes()[3] == b':'
            && z[1..3]
                .bytes()
                .chain(z[4..6].bytes())
                .all(|c| c.is_ascii_digit()) =>
        {
            z.to_string()
        }
        _ => return Err(bad()),
    };
    let frac = frac.trim_end_matches('0');
    let mut out = format!("{}T{}", &s[..10], &s[11..19]);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out.push_str(&zone);
    Ok(out)
}

/// containers/image's Schema2V1Image / Schema2Config, field by field.
mod legacy {
    use super::{go_time, string, ConfigError};
    use serde_json::{Map, Value};
    use std::collections::BTreeMap;

    fn str_field(o: &Map<String, Value>, k: &'static str) -> Result<String, ConfigError> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(ConfigError::BadField(k, format!("not a string: {v}"))),
        }
    }

    fn bool_field(o: &Map<String, Value>, k: &'static str) -> Result<bool, ConfigError> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(ConfigError::BadField(k, format!("not a boolean: {v}"))),
        }
    }

    /// []string: null/missing → null, else the strings.
    fn strings(
        o: &Map<String, Value>,
        k: &'static str,
        strslice: bool,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if strslice => Ok(Some(vec![s.clone()])),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Null => Ok(String::new()),
                    v => Err(ConfigError::BadField(k, format!("not a string: {v}"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(ConfigError::BadField(k, format!("not a list: {v}"))),
        }
    }

    fn list(v: &Option<Vec<String>>) -> String {
        match v {
            None => "null".into(),
            Some(l) => format!(
                "[{}]",
                l.iter().map(|s| string(s)).collect::<Vec<_>>().join(",")
            ),
        }
    }

    /// map[string]struct{} (sets) or map[string]string; sorted keys.
    fn map(
        o: &Map<String, Value>,
        k: &'static str,
        set: bool,
    ) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(key, v)| {
                    let val = if set {
                        "{}".to_string()
                    } else {
                        match v {
                            Value::String(s) => string(s),
                            Value::Null => string(""),
                            v => {
                                return Err(ConfigError::BadField(k, format!("not a string: {v}")))
                            }
                        }
                    };
                    Ok((key.clone(), val))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
                .map(Some),
            Some(v) => Err(ConfigError::BadField(k, format!("not an object: {v}"))),
        }
    }

    fn map_text(m: &BTreeMap<String, String>) -> String {
        let parts: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{}:{v}", string(k)))
            .collect();
        format!("{{{}}}", parts.join(","))
    }

    fn int(o: &Map<String, Value>, k: &'static str) -> Result<Option<i64>, ConfigError> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ConfigError::BadField(k, format!("not an integer: {v}"))),
        }
    }

    fn container_config(v: Option<&Value>) -> Result<String, ConfigError> {
        let empty = Map::new();
        let o = match v {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(o)) => o,
            Some(v) => {
                return Err(ConfigError::BadField(
                    "config",
                    format!("not an object: {v}"),
                ))
            }
        };
        let mut f: Vec<(&str, String)> = Vec::new();
        let s = |k: &'static str| str_field(o, k).map(|v| string(&v));
        let b = |k: &'static str| bool_field(o, k).map(|v| v.to_string());
        f.push(("Hostname", s("Hostname")?));
        f.push(("Domainname", s("Domainname")?));
        f.push(("User", s("User")?));
        f.push(("AttachStdin", b("AttachStdin")?));
        f.push(("AttachStdout", b("AttachStdout")?));
        f.push(("AttachStderr", b("AttachStderr")?));
        if let Some(m) = map(o, "ExposedPorts", true)?.filter(|m| !m.is_empty()) {
            f.push(("ExposedPorts", map_text(&m)));
        }
        f.push(("Tty", b("Tty")?));
        f.push(("OpenStdin", b("OpenStdin")?));
        f.push(("StdinOnce", b("StdinOnce")?));
        f.push(("Env", list(&strings(o, "Env", false)?)));
        f.push(("Cmd", list(&strings(o, "Cmd", true)?)));
        if let Some(Value::Object(h)) = o.get("Healthcheck") {
            let mut hf = Vec::new();
            if let Some(t) = strings(h, "Test", false)?.filter(|t| !t.is_empty()) {
                hf.push(format!(r#""Test":{}"#, list(&Some(t))));
            }
            for k in ["StartPeriod", "Interval", "Timeout", "Retries"] {
                if let Some(n) = int(h, k)?.filter(|n| *n != 0) {
                    hf.push(format!(r#""{k}":{n}"#));
                }
            }
            f.push(("Healthcheck", format!("{{{}}}", hf.join(","))));
        }
        if bool_field(o, "ArgsEscaped")? {
            f.push(("ArgsEscaped", "true".into()));
        }
        f.push(("Image", s("Image")?));
        f.push((
            "Volumes",
            map(o, "Volumes", true)?.map_or("null".into(), |m| map_text(&m)),
        ));
        f.push(("WorkingDir", s("WorkingDir")?));
        f.push(("Entrypoint", list(&strings(o, "Entrypoint", true)?)));
        if bool_field(o, "NetworkDisabled")? {
            f.push(("NetworkDisabled", "true".into()));
        }
        let mac = str_field(o, "MacAddress")?;
        if !mac.is_empty() {
            f.push(("MacAddress", string(&mac)));
        }
        f.push(("OnBuild", list(&strings(o, "OnBuild", false)?)));
        f.push((
            "Labels",
            map(o, "Labels", false)?.map_or("null".into(), |m| map_text(&m)),
        ));
        let stop = str_field(o, "StopSignal")?;
        if !stop.is_empty() {
            f.push(("StopSignal", string(&stop)));
        }
        if let Some(n) = int(o, "StopTimeout")? {
            f.push(("StopTimeout", n.to_string()));
        }
        if let Some(sh) = strings(o, "Shell", true)?.filter(|s| !s.is_empty()) {
            f.push(("Shell", list(&Some(sh))));
        }
        let parts: Vec<String> = f.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
        Ok(format!("{{{}}}", parts.join(",")))
    }

    /// The top-level fields V1Image keeps, encoded; unknown keys are gone.
    pub fn encode(v: &Value) -> Result<BTreeMap<String, String>, ConfigError> {
        let empty = Map::new();
        let o = v.as_object().unwrap_or(&empty);
        let mut out = BTreeMap::new();
        for k in [
            "comment",
            "container",
            "docker_version",
            "author",
            "architecture",
            "variant",
            "os",
        ] {
            let s = str_field(o, k)?;
            if !s.is_empty() {
                out.insert(k.to_string(), string(&s));
            }
        }
        let created = match o.get("created") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(v) => return Err(ConfigError::BadField("created", v.to_string())),
        };
        out.insert("created".into(), string(&go_time(created)?));
        out.insert(
            "container_config".into(),
            container_config(o.get("container_config"))?,
        );
        if let Some(c) = o.get("config").filter(|c| !c.is_null()) {
            out.insert("config".into(), container_config(Some(c))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
