//! Response edits: URLs and names that point into the backend are turned
//! into what the client addressed. Anything pointing elsewhere (object
//! storage redirects, external token services) is left untouched.

use super::request::map_scope;
use super::REALM_PREFIX;
use crate::config::{ListenMethod, Repository};
use std::sync::Arc;

/// How one backend repository appears to the client.
#[derive(Debug, Clone)]
pub struct View {
    /// `https://<host[:port]>` as the client dialed it.
    pub client_origin: String,
    /// Authorities that mean "the backend": its own, and the client-facing
    /// one it may have built from X-Forwarded-Host.
    pub backend_authorities: Vec<String>,
    pub backend_name: String,
    /// The backend's API root for this repository, e.g. `/v2`.
    pub v2_prefix: String,
    /// Backend name prefix (`team-a/` or empty).
    pub name_prefix: String,
    /// What the client puts before the image: `<key>/` or empty.
    pub client_prefix: String,
}

/// What a `View` is built from, kept per request. The `View` itself (six
/// strings) is built only for an answer with something to rewrite, which
/// most (a manifest's 200) do not have.
#[derive(Debug, Clone)]
pub struct ViewOf {
    client_host: String,
    repo: Arc<Repository>,
    method: ListenMethod,
}

impl ViewOf {
    pub fn new(client_host: &str, repo: &Arc<Repository>, method: &ListenMethod) -> Self {
        Self {
            client_host: client_host.to_string(),
            repo: repo.clone(),
            method: method.clone(),
        }
    }

    pub fn view(&self) -> View {
        View::new(&self.client_host, &self.repo, &self.method)
    }
}

impl View {
    /// How `repo` looks to a client that reached `client_host` through a
    /// listener with `method`.
    pub fn new(client_host: &str, repo: &Repository, method: &ListenMethod) -> Self {
        let b = &repo.backend;
        Self {
            client_origin: format!("https://{client_host}"),
            backend_authorities: vec![b.authority.clone(), client_host.to_string()],
            backend_name: b.name.clone(),
            v2_prefix: b.v2_prefix_for(&repo.key).into_owned(),
            name_prefix: repo.name_prefix.clone(),
            client_prefix: match method {
                ListenMethod::Path => format!("{}/", repo.key),
                _ => String::new(),
            },
        }
    }

    /// Backend image name → client name; None when outside the prefix.
    pub fn client_name(&self, backend_name: &str) -> Option<String> {
        let image = backend_name.strip_prefix(self.name_prefix.as_str())?;
        (!image.is_empty()).then(|| format!("{}{image}", self.client_prefix))
    }

    /// Backend path (and query) under the API root → client path.
    fn client_path(&self, path_and_query: &str) -> Option<String> {
        let rest = path_and_query.strip_prefix(self.v2_prefix.as_str())?;
        if rest.is_empty() || rest.starts_with('?') {
            return Some(format!("/v2{rest}"));
        }
        let rest = rest.strip_prefix('/')?;
        if rest.starts_with("_catalog") {
            return Some(format!("/v2/{rest}"));
        }
        let image_and_tail = rest.strip_prefix(self.name_prefix.as_str())?;
        Some(format!("/v2/{}{image_and_tail}", self.client_prefix))
    }

    fn backend_url<'a>(&self, url: &'a str) -> Option<&'a str> {
        on_authorities(&self.backend_authorities, url)
    }

    /// The backend path of a challenge's realm when the realm lies on the
    /// backend: the token endpoint the realm route may forward to.
    pub fn backend_realm(&self, challenge: &str) -> Option<String> {
        realm_path(&self.backend_authorities, challenge)
    }

    /// `Location`: relative stays relative; absolute on the backend becomes
    /// absolute on the client origin.
    pub fn location(&self, value: &str) -> Option<String> {
        if value.starts_with('/') {
            return self.client_path(value);
        }
        let path = self.backend_url(value)?;
        let p = self.client_path(path).unwrap_or_else(|| path.to_string());
        Some(format!("{}{p}", self.client_origin))
    }

    /// `Link: <url>; rel="next", ...`: each URL reference is rewritten.
    pub fn link(&self, value: &str) -> Option<String> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        let mut changed = false;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>') else {
                break;
            };
            let url = &rest[open + 1..open + close];
            out.push_str(&rest[..=open]);
            match self.location(url) {
                Some(new) => {
                    changed = true;
                    out.push_str(&new);
                }
                None => out.push_str(url),
            }
            out.push('>');
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        changed.then_some(out)
    }

    /// `WWW-Authenticate`: a realm on the backend is reached through
    /// dockgate's realm route; scope names become client names.
    pub fn www_authenticate(&self, value: &str) -> Option<String> {
        let (scheme, params) = parse_challenge(value)?;
        let mut changed = false;
        let params: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| {
                let new = match k.to_ascii_lowercase().as_str() {
                    "realm" => self.realm(&v),
                    "scope" => {
                        let mapped: Vec<String> = v
                            .split(' ')
                            .map(|s| {
                                map_scope(s, |n| self.client_name(n))
                                    .unwrap_or_else(|| s.to_string())
                            })
                            .collect();
                        Some(mapped.join(" ")).filter(|m| *m != v)
                    }
                    _ => None,
                };
                match new {
                    Some(n) => {
                        changed = true;
                        (k, n)
                    }
                    None => (k, v),
                }
            })
            .collect();
        if !changed {
            return None;
        }
        let body: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        Some(format!("{scheme} {}", body.join(",")))
    }

    fn realm(&self, realm: &str) -> Option<String> {
        let path = if realm.starts_with('/') {
            realm
        } else {
            self.backend_url(realm)?
        };
        Some(format!(
            "{}{REALM_PREFIX}{}{path}",
            self.client_origin, self.backend_name
        ))
    }
}

impl View {
    /// Whether client and backend name images differently.
    pub fn renames_images(&self) -> bool {
        self.client_prefix != self.name_prefix
    }

    /// A `tags/list` body names the image as the backend does; the client
    /// asked for it by its own name. None: unchanged (not JSON of that shape,
    /// or a name outside the repository's prefix).
    pub fn tags_list(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut doc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).ok()?;
        let backend = doc.get("name")?.as_str()?;
        let client = self.client_name(backend)?;
        if client == backend {
            return None;
        }
        doc.insert("name".into(), serde_json::Value::String(client));
        serde_json::to_vec(&doc).ok()
    }
}

/// Splits an absolute URL into (authority, path-and-query) when its
/// authority is one of `authorities`; None for other hosts.
fn on_authorities<'a>(authorities: &[String], url: &'a str) -> Option<&'a str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let (auth, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let auth = auth.to_ascii_lowercase();
    let ours = authorities.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a == auth || strip_default_port(&a) == strip_default_port(&auth)
    });
    ours.then_some(path)
}

/// The path (without query) of a challenge's realm when it lies on one of
/// `authorities` (or is relative).
pub fn realm_path(authorities: &[String], challenge: &str) -> Option<String> {
    let (_, params) = parse_challenge(challenge)?;
    let (_, realm) = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("realm"))?;
    let path = if realm.starts_with('/') {
        realm.as_str()
    } else {
        on_authorities(authorities, realm)?
    };
    let path = path.split('?').next().unwrap_or("/");
    Some(if path.is_empty() { "/" } else { path }.to_string())
}

fn strip_default_port(a: &str) -> &str {
    a.strip_suffix(":443")
        .or_else(|| a.strip_suffix(":80"))
        .unwrap_or(a)
}

/// `Scheme k="v", k2=v2` → (scheme, params). Quoted values may hold commas.
pub fn parse_challenge(value: &str) -> Option<(String, Vec<(String, String)>)> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i] == b' ') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key = rest[ks..i].trim().to_string();
        i += 1;
        let mut val = String::new();
        if b.get(i) == Some(&b'"') {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = rest[i..].chars().next()?;
                val.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = rest[vs..i].trim().to_string();
        }
        params.push((key, val));
    }
    Some((scheme.to_string(), params))
}

#[cfg(test)]
mod tests;
