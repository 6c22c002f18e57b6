//! Converting schema1 images in place: read the manifest by digest,
//! validate it, stream each distinct layer once for its diff_id, upload the
//! config, write the new manifest, then move every tag that still points at
//! the old digest (re-checked just before each write) and confirm it.

use super::client::{Client, ClientError, ACCEPT_ALL, MANIFEST_LIMIT};
use super::config_v1::{self, Target};
use super::journal::{Event, Journal, JournalError};
use super::layer::{Compression, DiffId, Layer, LayerError};
use super::scan::{manifest_path, Row};
use super::schema1::{self, sha256_digest};
use super::Progress;
use crate::config::Repository;
use bytes::Bytes;
use http::{Method, StatusCode};
use std::collections::HashMap;

/// Why an image was skipped (nothing was written unless the outcome says
/// so), or why the interrupted run's writes could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("a child of a manifest list: convert it by rewriting the list (not supported yet)")]
    ListChild,
    #[error("the backend cannot read it (distribution 3): convert through a 2.8 registry on the same storage")]
    Unreadable,
    #[error("no matching tag")]
    NoMatchingTag,
    /// Every matching tag is in the journal as converted, yet points at the
    /// old digest again: one note per tag.
    #[error("{}", .0.join("; "))]
    Reverted(Vec<String>),
    #[error("{0}")]
    Client(#[from] ClientError),
    /// A backend answer the step cannot go on from; `request` names it.
    #[error("{request}: {status}")]
    Status { request: String, status: StatusCode },
    /// A write the backend refused, with the start of its answer.
    #[error("{request}: {status} {body}")]
    Refused {
        request: String,
        status: StatusCode,
        body: String,
    },
    #[error("the manifest's digest is {got}, not {want}")]
    Digest { got: String, want: String },
    #[error("{0}")]
    Schema1(#[from] schema1::Schema1Error),
    #[error("blob {0} is missing from the backend")]
    BlobMissing(String),
    #[error("layer {digest}: {source}")]
    Layer {
        digest: String,
        #[source]
        source: LayerError,
    },
    #[error("layer {digest}: {source}")]
    LayerFetch {
        digest: String,
        #[source]
        source: ClientError,
    },
    #[error("layer {0} was not read")]
    NotRead(String),
    #[error("{0}")]
    Config(#[from] config_v1::ConfigError),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Journal(#[from] JournalError),
    #[error("tag {tag}: after the write it answers {content_type} {digest}")]
    Unverified {
        tag: String,
        content_type: String,
        digest: String,
    },
}

const SCHEMA1_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws, \
application/vnd.docker.distribution.manifest.v1+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    // Docker schema2 (lossless; byte-identical to `skopeo copy --format v2s2`).
    V2s2,
    // OCI image manifest (same config content, OCI media types).
    Oci,
}

impl Format {
    fn target(self) -> Target {
        match self {
            Format::V2s2 => Target::Schema2,
            Format::Oci => Target::Oci,
        }
    }
    fn manifest_type(self) -> &'static str {
        match self {
            Format::V2s2 => "application/vnd.docker.distribution.manifest.v2+json",
            Format::Oci => "application/vnd.oci.image.manifest.v1+json",
        }
    }
    fn config_type(self) -> &'static str {
        match self {
            Format::V2s2 => "application/vnd.docker.container.image.v1+json",
            Format::Oci => "application/vnd.oci.image.config.v1+json",
        }
    }
    fn layer_type(self, c: Compression) -> &'static str {
        match (self, c) {
            (Format::V2s2, Compression::Gzip) => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
            (Format::V2s2, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
            (Format::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (Format::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
        }
    }
}

pub struct Options {
    pub format: Format,
    pub dry_run: bool,
    pub delete_old: bool,
    /// Only these tags of the image (`--image NAME:TAG`); None: all.
    pub tag: Option<String>,
}

/// What became of one image.
#[derive(Debug, Default)]
pub struct Outcome {
    pub new_digest: String,
    pub converted: Vec<String>,
    pub notes: Vec<String>,
}

/// The converted manifest and config, ready to write.
pub struct Converted {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub digest: String,
    pub layers: usize,
}

// Go's struct field order, as skopeo writes them.
#[derive(serde::Serialize)]
struct S2Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: S2Descriptor<'a>,
    layers: Vec<S2Descriptor<'a>>,
}

#[derive(serde::Serialize)]
struct S2Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    size: u64,
    digest: String,
}

#[derive(serde::Serialize)]
struct OciManifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: OciDescriptor<'a>,
    layers: Vec<OciDescriptor<'a>>,
}

#[derive(serde::Serialize)]
struct OciDescriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: String,
    size: u64,
}

/// The pure part: config and manifest from a validated schema1 and the
/// layers found for its blobSums.
pub fn build(
    m: &schema1::Manifest,
    layers: &HashMap<String, Layer>,
    format: Format,
) -> Result<Converted, ConvertError> {
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    for e in m.entries.iter().rev().filter(|e| !e.throwaway) {
        let l = layers
            .get(&e.blob_sum)
            .ok_or_else(|| ConvertError::NotRead(e.blob_sum.clone()))?;
        diff_ids.push(l.diff_id.clone());
        descs.push((format.layer_type(l.compression), l.size, e.blob_sum.clone()));
    }
    let config = config_v1::build(m, &diff_ids, format.target())?;
    let cd = sha256_digest(&config);
    let manifest = match format {
        Format::V2s2 => serde_json::to_vec(&S2Manifest {
            schema_version: 2,
            media_type: format.manifest_type(),
            config: S2Descriptor {
                media_type: format.config_type(),
                size: config.len() as u64,
                digest: cd,
            },
            layers: descs
                .into_iter()
                .map(|(media_type, size, digest)| S2Descriptor {
                    media_type,
                    size,
                    digest,
                })
                .collect(),
        }),
        Format::Oci => serde_json::to_vec(&OciManifest {
            schema_version: 2,
            media_type: format.manifest_type(),
            config: OciDescriptor {
                media_type: format.config_type(),
                digest: cd,
                size: config.len() as u64,
            },
            layers: descs
                .into_iter()
                .map(|(media_type, size, digest)| OciDescriptor {
                    media_type,
                    digest,
                    size,
                })
                .collect(),
        }),
    }?;
    Ok(Converted {
        digest: sha256_digest(&manifest),
        layers: diff_ids.len(),
        config,
        manifest,
    })
}

fn blob_path(repo: &Repository, name: &str, digest: &str) -> String {
    format!(
        "{}/{name}/blobs/{digest}",
        repo.backend.v2_prefix_for(&repo.key)
    )
}

/// A `Location` as a path on the same backend.
fn path_of(location: &str) -> String {
    match location.find("://") {
        Some(i) => {
            let rest = &location[i + 3..];
            rest.find('/').map_or("/".into(), |j| rest[j..].to_string())
        }
        None => location.to_string(),
    }
}

/// Converts one schema1 manifest (a scan row). Err: why it was skipped;
/// nothing was written unless a tag write is reported in the outcome.
pub async fn convert_one(
    client: &Client,
    repo: &Repository,
    row: &Row,
    opts: &Options,
    journal: &mut Journal,
    progress: &dyn Progress,
) -> Result<Outcome, ConvertError> {
    let b = &repo.backend;
    let name = row.backend_name.as_str();
    if row.list.is_some() {
        return Err(ConvertError::ListChild);
    }
    if row.digest.is_empty() {
        return Err(ConvertError::Unreadable);
    }
    let mut out = Outcome::default();
    let tags: Vec<String> = row
        .tags
        .iter()
        .filter(|t| opts.tag.as_ref().is_none_or(|want| want == *t))
        .cloned()
        .collect();
    let mut todo = Vec::new();
    for t in tags {
        if journal.converted(&row.repository, &row.image, &t, &row.digest) {
            out.notes.push(format!("tag {t}: the journal says it was converted already, yet it points at the old digest again; left alone"));
        } else {
            todo.push(t);
        }
    }
    if todo.is_empty() {
        return Err(if out.notes.is_empty() {
            ConvertError::NoMatchingTag
        } else {
            ConvertError::Reverted(out.notes)
        });
    }
    // 1. The manifest, by digest, checked against it.
    let path = manifest_path(repo, name, &row.digest);
    let r = client
        .send(
            b,
            Method::GET,
            &path,
            &[("Accept", SCHEMA1_ACCEPT)],
            None,
            MANIFEST_LIMIT,
        )
        .await?;
    if !r.status.is_success() {
        return Err(ConvertError::Status {
            request: format!("GET manifest {}", row.digest),
            status: r.status,
        });
    }
    let got = schema1::digest(&r.body)?;
    if got != row.digest {
        return Err(ConvertError::Digest {
            got,
            want: row.digest.clone(),
        });
    }
    let m = schema1::parse(&r.body)?;
    // 2. Each distinct non-throwaway blob once: its size first (a missing
    // blob skips the image before anything is read), then its bytes.
    let mut blobs: Vec<String> = Vec::new();
    for e in m.entries.iter().rev().filter(|e| !e.throwaway) {
        if !blobs.contains(&e.blob_sum) {
            blobs.push(e.blob_sum.clone());
        }
    }
    let mut total = 0u64;
    for d in &blobs {
        let h = client
            .send(b, Method::HEAD, &blob_path(repo, name, d), &[], None, 0)
            .await?;
        match h.status.as_u16() {
            200 => {
                total += h
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            }
            404 => return Err(ConvertError::BlobMissing(d.clone())),
            _ => {
                return Err(ConvertError::Status {
                    request: format!("HEAD blob {d}"),
                    status: h.status,
                })
            }
        }
    }
    progress.message(&format!(
        "{}/{}@{}",
        row.repository,
        row.image,
        short(&row.digest)
    ));
    progress.start(total, "bytes");
    let mut layers = HashMap::new();
    for d in &blobs {
        let mut diff = DiffId::new();
        let r = client
            .stream_get(b, &blob_path(repo, name, d), |chunk| {
                progress.inc(chunk.len() as u64);
                diff.update(chunk)
            })
            .await
            .map_err(|e| match e {
                ClientError::Sink(source) => ConvertError::Layer {
                    digest: d.clone(),
                    source,
                },
                source => ConvertError::LayerFetch {
                    digest: d.clone(),
                    source,
                },
            })?;
        if !r.status.is_success() {
            return Err(ConvertError::Status {
                request: format!("GET blob {d}"),
                status: r.status,
            });
        }
        let l = diff.finish(d).map_err(|source| ConvertError::Layer {
            digest: d.clone(),
            source,
        })?;
        layers.insert(d.clone(), l);
    }
    progress.finish();
    let c = build(&m, &layers, opts.format)?;
    out.new_digest = c.digest.clone();
    if opts.dry_run {
        out.converted = todo;
        return Ok(out);
    }
    // 3. The config blob (layers are already in the repository).
    let config_digest = sha256_digest(&c.config);
    let cp = blob_path(repo, name, &config_digest);
    let h = client.send(b, Method::HEAD, &cp, &[], None, 0).await?;
    if h.status.as_u16() != 200 {
        upload(
            client,
            repo,
            name,
            &config_digest,
            Bytes::from(c.config.clone()),
        )
        .await?;
    }
    // 4. The manifest by digest, then each tag that still points at the old one.
    let mt = opts.format.manifest_type();
    put_manifest(client, repo, name, &c.digest, &c.manifest, mt).await?;
    for t in &todo {
        let (_, now, _) = head(client, repo, name, t).await?;
        if now == c.digest {
            out.notes.push(format!("tag {t} was already converted"));
        } else if now != row.digest {
            out.notes
                .push(format!("tag {t} moved to {now} since the scan; left alone"));
            continue;
        } else {
            journal.record(&Event::Writing {
                repository: row.repository.clone(),
                image: row.image.clone(),
                tag: t.clone(),
                old: row.digest.clone(),
                new: c.digest.clone(),
                media_type: mt.to_string(),
            })?;
            put_manifest(client, repo, name, t, &c.manifest, mt).await?;
            let (ct, d, _) = head(client, repo, name, t).await?;
            if d != c.digest || ct != mt {
                return Err(ConvertError::Unverified {
                    tag: t.clone(),
                    content_type: ct,
                    digest: d,
                });
            }
        }
        journal.record(&Event::Tag {
            repository: row.repository.clone(),
            image: row.image.clone(),
            tag: t.clone(),
            old: row.digest.clone(),
            new: c.digest.clone(),
            media_type: mt.to_string(),
        })?;
        out.converted.push(t.clone());
    }
    // 5. DELETE by digest removes every tag still on it: only when none is.
    if opts.delete_old {
        let mut left = Vec::new();
        for t in &row.tags {
            if head(client, repo, name, t).await?.1 == row.digest {
                left.push(t.clone());
            }
        }
        if left.is_empty() {
            let r = client
                .send(b, Method::DELETE, &path, &[], None, 64 << 10)
                .await?;
            if r.status.is_success() {
                journal.record(&Event::Deleted {
                    repository: row.repository.clone(),
                    image: row.image.clone(),
                    old: row.digest.clone(),
                })?;
                out.notes.push(format!("deleted {}", row.digest));
            } else {
                out.notes
                    .push(format!("DELETE {}: {}", row.digest, r.status));
            }
        } else {
            out.notes.push(format!(
                "old manifest kept: tags {} still point at it",
                left.join(", ")
            ));
        }
    }
    Ok(out)
}

/// Completes the record of tag writes a killed run started: a tag that
/// now points at the new digest is recorded as converted.
pub async fn settle(
    client: &Client,
    repos: &[std::sync::Arc<Repository>],
    journal: &mut Journal,
) -> Result<usize, ConvertError> {
    let mut settled = 0;
    for e in journal.pending().to_vec() {
        let Event::Writing {
            repository,
            image,
            tag,
            old,
            new,
            media_type,
        } = e
        else {
            continue;
        };
        let Some(repo) = repos.iter().find(|r| r.key == repository) else {
            continue;
        };
        let (_, now, _) = head(client, repo, &repo.backend_name(&image), &tag).await?;
        if now == new {
            journal.record(&Event::Tag {
                repository,
                image,
                tag,
                old,
                new,
                media_type,
            })?;
            settled += 1;
        }
    }
    Ok(settled)
}

/// (content type, digest, status) of a reference.
async fn head(
    client: &Client,
    repo: &Repository,
    name: &str,
    reference: &str,
) -> Result<(String, String, u16), ConvertError> {
    let r = client
        .send(
            &repo.backend,
            Method::HEAD,
            &manifest_path(repo, name, reference),
            &[("Accept", ACCEPT_ALL)],
            None,
            0,
        )
        .await?;
    let ct = r
        .header("content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let d = r.header("docker-content-digest").unwrap_or("").to_string();
    Ok((ct, d, r.status.as_u16()))
}

async fn put_manifest(
    client: &Client,
    repo: &Repository,
    name: &str,
    reference: &str,
    body: &[u8],
    mt: &str,
) -> Result<(), ConvertError> {
    let r = client
        .send(
            &repo.backend,
            Method::PUT,
            &manifest_path(repo, name, reference),
            &[("Content-Type", mt)],
            Some(Bytes::copy_from_slice(body)),
            64 << 10,
        )
        .await?;
    if r.status.as_u16() != 201 {
        return Err(ConvertError::Refused {
            request: format!("PUT manifest {reference}"),
            status: r.status,
            body: String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).into_owned(),
        });
    }
    Ok(())
}

/// A monolithic upload: POST for a session, PUT with the digest.
async fn upload(
    client: &Client,
    repo: &Repository,
    name: &str,
    digest: &str,
    body: Bytes,
) -> Result<(), ConvertError> {
    let b = &repo.backend;
    let start = format!("{}/{name}/blobs/uploads/", b.v2_prefix_for(&repo.key));
    let r = client
        .send(b, Method::POST, &start, &[], None, 64 << 10)
        .await?;
    let loc = match (r.status.as_u16(), r.header("location")) {
        (202, Some(l)) => path_of(l),
        _ => {
            return Err(ConvertError::Status {
                request: format!("POST {start}"),
                status: r.status,
            })
        }
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = format!("{loc}{sep}digest={digest}");
    let r = client
        .send(
            b,
            Method::PUT,
            &put,
            &[("Content-Type", "application/octet-stream")],
            Some(body),
            64 << 10,
        )
        .await?;
    if r.status.as_u16() != 201 {
        return Err(ConvertError::Status {
            request: "PUT config blob".into(),
            status: r.status,
        });
    }
    Ok(())
}

pub fn short(d: &str) -> &str {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            path_of("/v2/x/blobs/uploads/u?_state=s"),
            "/v2/x/blobs/uploads/u?_state=s"
        );
        assert_eq!(
            path_of("http://127.0.0.1:5000/v2/x/blobs/uploads/u"),
            "/v2/x/blobs/uploads/u"
        );
    }

    #[test]
    fn manifest_like_skopeo() {
        let id = |n: u8| format!("{:064x}", n);
        let blob = format!("sha256:{}", id(9));
        let body = serde_json::json!({
            "schemaVersion": 1,
            "fsLayers": [{"blobSum": format!("sha256:{}", id(5))}, {"blobSum": blob}],
            "history": [
                {"v1Compatibility": format!(r#"{{"id":"{}","parent":"{}","throwaway":true,"created":"2020-01-01T00:00:00Z"}}"#, id(2), id(1))},
                {"v1Compatibility": format!(r#"{{"id":"{}","created":"2020-01-01T00:00:00Z"}}"#, id(1))},
            ],
        });
        let m = schema1::parse(body.to_string().as_bytes()).unwrap();
        let mut layers = HashMap::new();
        layers.insert(
            blob.clone(),
            Layer {
                diff_id: "sha256:dd".into(),
                size: 42,
                compression: Compression::Gzip,
            },
        );
        let c = build(&m, &layers, Format::V2s2).unwrap();
        let cd = sha256_digest(&c.config);
        let want = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{cd}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":42,"digest":"{blob}"}}]}}"#,
            c.config.len()
        );
        assert_eq!(String::from_utf8(c.manifest.clone()).unwrap(), want);
        assert_eq!(c.digest, sha256_digest(want.as_bytes()));
        let o = build(&m, &layers, Format::Oci).unwrap();
        let s = String::from_utf8(o.manifest).unwrap();
        assert!(
            s.contains(
                r#""layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":""#
            ),
            "{s}"
        );
    }
}
