//! One backend fetch into the cache, and the readers that stream from it
//! (or from a stored object).

use super::{blocking, disk, Cache, CacheError, CacheMetrics, Key, Kind, Request};
use crate::migrate::client::ACCEPT_ALL;
use crate::upstream::HOP_BY_HOP;
use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use ring::digest::Context;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use tokio::sync::watch;

use super::rules::Digest;

/// Bytes hashed and written per blocking call.
const CHUNK: usize = 256 << 10;
/// Bytes read per chunk sent: each reader keeps one such buffer and rustls
/// up to as much in records. 32 to 256 KiB cost the same CPU per GiB in the
/// storm bench; RSS grows with it (100 readers: 48 MiB at 64 KiB, 70 at 256).
const READ_CHUNK: usize = 64 << 10;
/// Manifests are capped like everywhere else in dockgate.
const MANIFEST_LIMIT: u64 = 4 << 20;

#[derive(Clone, Debug)]
pub enum Progress {
    /// No answer from the backend yet.
    Waiting,
    /// The backend said 200 with this length; `written` bytes are on disk.
    Streaming {
        file: Arc<File>,
        size: u64,
        content_type: Arc<str>,
        written: u64,
    },
    /// All bytes written and the digest verified.
    Done {
        file: Arc<File>,
        size: u64,
        content_type: Arc<str>,
    },
    /// Not for the cache (not a 200, no length, too big, no room): readers
    /// that have sent nothing go to the backend themselves.
    Declined,
    /// Broken after bytes went out (short body, wrong digest, disk error):
    /// readers abort, so no client takes the object for complete.
    Failed,
}

pub struct Fill {
    /// The request that started it: its repository is the one the
    /// backend's answer speaks for.
    key: Key,
    digest: Digest,
    progress: watch::Sender<Progress>,
}

impl Fill {
    pub fn new(key: Key) -> Arc<Self> {
        Arc::new(Self {
            digest: key.digest.clone(),
            key,
            progress: watch::Sender::new(Progress::Waiting),
        })
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Waits for the backend's answer: a reader of the whole object, or
    /// None when the request should go to the backend instead.
    pub async fn reader(&self, metrics: CacheMetrics) -> Option<Reader> {
        let mut rx = self.progress.subscribe();
        loop {
            let p = rx.borrow_and_update().clone();
            match p {
                Progress::Waiting => {}
                Progress::Streaming {
                    size, content_type, ..
                }
                | Progress::Done {
                    size, content_type, ..
                } => {
                    return Some(Reader {
                        src: Src::Filling(rx),
                        pos: 0,
                        end: size,
                        size,
                        content_type: content_type.to_string(),
                        metrics,
                        spare: None,
                    })
                }
                Progress::Declined | Progress::Failed => return None,
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    }
}

enum Src {
    Stored(Arc<File>),
    Filling(watch::Receiver<Progress>),
}

/// Chunks of one object, from a stored file or a fill in progress.
pub struct Reader {
    src: Src,
    pos: u64,
    /// Exclusive.
    end: u64,
    pub size: u64,
    pub content_type: String,
    metrics: CacheMetrics,
    /// The last chunk's buffer, back from `recycle`.
    spare: Option<BytesMut>,
}

impl Reader {
    pub fn stored(file: Arc<File>, size: u64, content_type: String, metrics: CacheMetrics) -> Self {
        Self {
            src: Src::Stored(file),
            pos: 0,
            end: size,
            size,
            content_type,
            metrics,
            spare: None,
        }
    }

    /// Restricts to `start..=end` (a Range).
    pub fn limit(&mut self, start: u64, end: u64) {
        self.pos = start.min(self.size);
        self.end = end.saturating_add(1).min(self.size);
    }

    pub fn metrics(&self) -> &CacheMetrics {
        &self.metrics
    }

    /// The next chunk, None at the end, an error when the fill broke.
    pub async fn next(&mut self) -> Result<Option<Bytes>, CacheError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let (file, upto) = match &mut self.src {
            Src::Stored(f) => (f.clone(), self.end),
            Src::Filling(rx) => loop {
                let p = rx.borrow_and_update().clone();
                let ready = match p {
                    Progress::Streaming {
                        file,
                        size,
                        written,
                        ..
                    } => {
                        // The last byte waits for the digest check.
                        let allowed = if written >= size { size - 1 } else { written };
                        (allowed > self.pos).then_some((file, allowed.min(self.end)))
                    }
                    Progress::Done { file, .. } => Some((file, self.end)),
                    Progress::Failed | Progress::Declined => {
                        return Err(CacheError::FillFailed(String::new()))
                    }
                    Progress::Waiting => None,
                };
                if let Some(r) = ready {
                    break r;
                }
                if rx.changed().await.is_err() {
                    return Err(CacheError::FillFailed(String::new()));
                }
            },
        };
        let n = ((upto - self.pos) as usize).min(READ_CHUNK);
        let off = self.pos;
        let mut buf = match self.spare.take() {
            Some(b) => b,
            None => BytesMut::zeroed(READ_CHUNK),
        };
        buf.resize(READ_CHUNK, 0);
        buf.truncate(n);
        // From the page cache without a thread hop; only bytes that are not
        // in memory (or a file system without RWF_NOWAIT) go to the pool.
        let got = read_nowait(&file, &mut buf, off);
        let buf = if got > 0 {
            buf.truncate(got);
            buf
        } else {
            blocking(move || {
                file.read_exact_at(&mut buf, off)
                    .map_err(|e| CacheError::Task(format!("reading cached object: {e}")))?;
                Ok(buf)
            })
            .await?
        };
        self.pos += buf.len() as u64;
        Ok(Some(buf.freeze()))
    }

    /// Hands back a chunk once it is sent: when nothing else holds it, its
    /// buffer is reused for the next one (no fresh large allocation, no page
    /// faults, no purge per chunk).
    pub fn recycle(&mut self, chunk: Bytes) {
        if let Ok(b) = chunk.try_into_mut() {
            if b.capacity() >= READ_CHUNK {
                self.spare = Some(b);
            }
        }
    }
}

/// `preadv2(RWF_NOWAIT)`: what the page cache holds of `buf.len()` bytes at
/// `off`, without waiting for the disk (0 when nothing was read that way).
fn read_nowait(file: &File, buf: &mut [u8], off: u64) -> usize {
    use rustix::io::{preadv2, ReadWriteFlags};
    let mut bufs = [std::io::IoSliceMut::new(buf)];
    preadv2(file, &mut bufs, off, ReadWriteFlags::NOWAIT).unwrap_or(0)
}

/// What the fetch ended in, for `finish`.
enum End {
    Declined,
    Failed(String),
    Stored,
}

/// Fetches the object once, for everyone waiting on `fill`.
pub(super) async fn run(cache: Arc<Cache>, fill: Arc<Fill>, r: Request) {
    let mut reserved = 0u64;
    let mut tmp = None;
    let end = fetch(&cache, &fill, &r, &mut reserved, &mut tmp).await;
    let d = fill.digest.clone();
    match end {
        End::Stored => {
            // Readers may finish now; storing happens behind them.
            let (file, ct) = match &*fill.progress.borrow() {
                Progress::Done {
                    file, content_type, ..
                } => (Some(file.clone()), content_type.to_string()),
                _ => (None, String::new()),
            };
            let (Some(file), Some(tmp_path)) = (file, tmp.clone()) else {
                cache.finish(&d, reserved, None);
                return;
            };
            let dir = cache.dir.clone();
            let meta = disk::Meta {
                size: reserved,
                content_type: ct.clone(),
            };
            let dd = d.clone();
            let tp = tmp_path.clone();
            let stored = blocking(move || disk::persist(&dir, &dd, &tp, &file, &meta)).await;
            match stored {
                Ok(()) => cache.finish(&d, reserved, Some(ct)),
                Err(e) => {
                    tracing::warn!(error = %e, digest = %d, "cache: could not store");
                    disk::remove_tmp(&tmp_path);
                    cache.finish(&d, reserved, None);
                }
            }
        }
        End::Declined | End::Failed(_) => {
            // Cleaned up and forgotten before readers hear of it, so the
            // next request starts afresh rather than joining this fill.
            if let Some(t) = tmp {
                let _ = blocking(move || {
                    disk::remove_tmp(&t);
                    Ok(())
                })
                .await;
            }
            cache.finish(&d, reserved, None);
            if let End::Failed(why) = &end {
                tracing::warn!(digest = %d, backend = %r.key.backend, name = %r.key.name, reason = %why, "cache: fetch failed, nothing stored");
                cache.metrics.failed_fills.inc();
                fill.progress.send_replace(Progress::Failed);
            } else {
                fill.progress.send_replace(Progress::Declined);
            }
        }
    }
}

async fn fetch(
    cache: &Arc<Cache>,
    fill: &Fill,
    r: &Request,
    reserved: &mut u64,
    tmp: &mut Option<std::path::PathBuf>,
) -> End {
    let b = &r.backend;
    let peer = r.peers.peer(b);
    let req = match request_head(r) {
        Ok(h) => h,
        Err(e) => return End::Failed(e.to_string()),
    };
    let (mut s, _) = match cache.connector.get_http_session(&peer).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "cache: backend connect failed");
            return End::Declined;
        }
    };
    s.set_read_timeout(Some(b.read_timeout));
    s.set_write_timeout(Some(b.write_timeout));
    let head = async {
        s.write_request_header(Box::new(req)).await?;
        s.finish_request_body().await?;
        s.read_response_header().await
    };
    if let Err(e) = head.await {
        tracing::debug!(error = %e, "cache: backend request failed");
        return End::Declined;
    }
    let Some(resp) = s.response_header() else {
        return End::Declined;
    };
    let size: Option<u64> = resp
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let limit = match r.kind {
        Kind::Manifest => MANIFEST_LIMIT,
        Kind::Blob => u64::MAX,
    };
    let (Some(size), true) = (size, resp.status == http::StatusCode::OK) else {
        return End::Declined;
    };
    if size == 0 || size > limit {
        return End::Declined;
    }
    let content_type: Arc<str> = resp
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(match r.kind {
            Kind::Blob => "application/octet-stream",
            Kind::Manifest => "application/json",
        })
        .into();
    if !cache.reserve(size).await {
        return End::Declined;
    }
    *reserved = size;
    // The backend holds it in this repository: said by this very answer.
    cache.confirm(&r.key);
    let dir = cache.dir.clone();
    let dd = fill.digest.clone();
    let (path, file) = match blocking(move || disk::create_tmp(&dir, &dd)).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "cache: cannot create a file");
            return End::Declined;
        }
    };
    *tmp = Some(path);
    let file = Arc::new(file);
    fill.progress.send_replace(Progress::Streaming {
        file: file.clone(),
        size,
        content_type: content_type.clone(),
        written: 0,
    });
    let mut ctx = Some(Context::new(fill.digest.algorithm.ring()));
    let mut written = 0u64;
    let mut buf = BytesMut::with_capacity(CHUNK);
    loop {
        let chunk = match s.read_response_body().await {
            Ok(c) => c,
            Err(e) => return End::Failed(format!("backend body: {e}")),
        };
        let eof = chunk.is_none();
        if let Some(c) = chunk {
            buf.extend_from_slice(&c);
        }
        if buf.len() >= CHUNK || (eof && !buf.is_empty()) {
            let data = buf.split().freeze();
            if written + data.len() as u64 > size {
                return End::Failed(format!(
                    "the backend sent more than its Content-Length {size}"
                ));
            }
            let (f, mut c, off) = (file.clone(), ctx.take(), written);
            let res = blocking(move || {
                if let Some(c) = c.as_mut() {
                    c.update(&data);
                }
                f.write_all_at(&data, off)
                    .map_err(|e| CacheError::Task(format!("writing cache file: {e}")))?;
                Ok((c, data.len() as u64))
            })
            .await;
            match res {
                Ok((c, n)) => {
                    ctx = c;
                    written += n;
                }
                Err(e) => return End::Failed(e.to_string()),
            }
            fill.progress.send_replace(Progress::Streaming {
                file: file.clone(),
                size,
                content_type: content_type.clone(),
                written,
            });
        }
        if eof {
            break;
        }
    }
    if written != size {
        return End::Failed(format!("body ended at {written} of {size} bytes"));
    }
    let Some(ctx) = ctx else {
        return End::Failed("hash state lost".into());
    };
    let got = ctx.finish();
    if !fill.digest.matches(got.as_ref()) {
        return End::Failed(format!(
            "digest mismatch: the backend's bytes hash to {}:{}",
            fill.digest.algorithm.as_str(),
            super::rules::hex(got.as_ref())
        ));
    }
    fill.progress.send_replace(Progress::Done {
        file,
        size,
        content_type,
    });
    cache
        .connector
        .release_http_session(s, &peer, Some(b.idle_timeout))
        .await;
    End::Stored
}

fn request_head(r: &Request) -> pingora::Result<RequestHeader> {
    let b = &r.backend;
    let mut req = RequestHeader::build(http::Method::GET, r.path.as_bytes(), None)?;
    req.set_version(http::Version::HTTP_11);
    req.insert_header("Host", b.authority.as_str())?;
    req.insert_header("User-Agent", "dockgate-cache")?;
    if r.kind == Kind::Manifest {
        req.insert_header("Accept", ACCEPT_ALL)?;
    }
    if let Some((user, pass)) = &b.credentials {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.insert_header("Authorization", format!("Basic {basic}"))?;
    }
    for h in HOP_BY_HOP {
        req.remove_header(h);
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks of a stored object, with buffers recycled between them, add
    /// up to the file (whole and a Range across a chunk boundary).
    #[tokio::test]
    async fn stored_reader_recycles_its_buffer_and_reads_every_byte() {
        let path = std::env::temp_dir().join(format!("dg-fill-{}", std::process::id()));
        let data: Vec<u8> = (0..(3 * READ_CHUNK + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let metrics = CacheMetrics::new(&prometheus::Registry::new()).unwrap();
        let size = data.len() as u64;
        for (start, end) in [
            (0, size - 1),
            (READ_CHUNK as u64 - 10, 2 * READ_CHUNK as u64 + 9),
        ] {
            let mut r = Reader::stored(file.clone(), size, "x".into(), metrics.clone());
            r.limit(start, end);
            let mut got = Vec::new();
            let mut reused = 0;
            while let Some(c) = r.next().await.unwrap() {
                got.extend_from_slice(&c);
                r.recycle(c);
                reused += usize::from(r.spare.is_some());
            }
            assert_eq!(got, &data[start as usize..=end as usize]);
            assert!(reused > 0);
        }
        let _ = std::fs::remove_file(&path);
    }
}
