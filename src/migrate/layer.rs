//! A layer's diff_id, computed while its bytes stream past: the blob digest
//! is checked, the compression is read from the first bytes (never from a
//! media type), and the decompressed stream is hashed, never held.

use ring::digest::{Context, SHA256};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    None,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum LayerError {
    #[error("{0}-compressed layer: no schema2 media type for it")]
    Unsupported(&'static str),
    #[error("gzip stream: {0}")]
    Gzip(String),
    #[error("blob digest is {got}, not {want}")]
    Digest { got: String, want: String },
}

/// Bytes needed to tell the formats apart.
const SNIFF: usize = 6;

/// Writes into a sha256.
struct Hasher(Context, u64);

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum State {
    Sniff(Vec<u8>),
    Gzip(Box<flate2::write::MultiGzDecoder<Hasher>>),
    Plain(Hasher),
    Failed(LayerError),
}

pub struct DiffId {
    blob: Context,
    size: u64,
    state: State,
}

/// What one blob turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub diff_id: String,
    pub size: u64,
    pub compression: Compression,
}

pub fn sniff(head: &[u8]) -> Result<Compression, LayerError> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(LayerError::Unsupported("zstd"))
    } else if head.starts_with(b"BZh") {
        Err(LayerError::Unsupported("bzip2"))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Err(LayerError::Unsupported("xz"))
    } else {
        Ok(Compression::None)
    }
}

impl Default for DiffId {
    fn default() -> Self {
        Self::new()
    }
}

impl DiffId {
    pub fn new() -> Self {
        Self {
            blob: Context::new(&SHA256),
            size: 0,
            state: State::Sniff(Vec::with_capacity(SNIFF)),
        }
    }

    pub fn update(&mut self, chunk: &[u8]) -> Result<(), LayerError> {
        self.blob.update(chunk);
        self.size += chunk.len() as u64;
        let state = std::mem::replace(&mut self.state, State::Sniff(Vec::new()));
        self.state = match state {
            State::Sniff(mut head) => {
                head.extend_from_slice(chunk);
                if head.len() < SNIFF {
                    State::Sniff(head)
                } else {
                    Self::start(&head)
                }
            }
            s => Self::feed(s, chunk),
        };
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    fn start(head: &[u8]) -> State {
        let s = match sniff(head) {
            Ok(Compression::Gzip) => State::Gzip(Box::new(flate2::write::MultiGzDecoder::new(
                Hasher(Context::new(&SHA256), 0),
            ))),
            Ok(Compression::None) => State::Plain(Hasher(Context::new(&SHA256), 0)),
            Err(e) => return State::Failed(e),
        };
        Self::feed(s, head)
    }

    fn feed(s: State, chunk: &[u8]) -> State {
        match s {
            State::Gzip(mut d) => match d.write_all(chunk) {
                Ok(()) => State::Gzip(d),
                Err(e) => State::Failed(LayerError::Gzip(e.to_string())),
            },
            State::Plain(mut h) => {
                h.0.update(chunk);
                State::Plain(h)
            }
            s => s,
        }
    }

    /// Ends the stream; checks the blob against `want` (its blobSum).
    pub fn finish(self, want: &str) -> Result<Layer, LayerError> {
        let got = format!(
            "sha256:{}",
            super::schema1::hex(self.blob.finish().as_ref())
        );
        if got != want {
            return Err(LayerError::Digest {
                got,
                want: want.to_string(),
            });
        }
        let state = match self.state {
            State::Sniff(head) => Self::start(&head),
            s => s,
        };
        let (hash, compression) = match state {
            State::Gzip(d) => match d.finish() {
                Ok(h) => (h.0.finish(), Compression::Gzip),
                Err(e) => return Err(LayerError::Gzip(e.to_string())),
            },
            State::Plain(h) => (h.0.finish(), Compression::None),
            State::Failed(e) => return Err(e),
            State::Sniff(_) => return Err(LayerError::Gzip("unreachable".into())),
        };
        Ok(Layer {
            diff_id: format!("sha256:{}", super::schema1::hex(hash.as_ref())),
            size: self.size,
            compression,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::schema1::sha256_digest;
    use flate2::write::GzEncoder;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn run(blob: &[u8], chunk: usize) -> Result<Layer, LayerError> {
        let mut d = DiffId::new();
        for c in blob.chunks(chunk.max(1)) {
            d.update(c)?;
        }
        d.finish(&sha256_digest(blob))
    }

    #[test]
    fn diff_ids_in_any_chunking() {
        let tar: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let want = sha256_digest(&tar);
        // Two gzip members: a plain GzDecoder would stop after the first.
        let mut multi = gz(&tar[..40_000]);
        multi.extend(gz(&tar[40_000..]));
        for chunk in [1, 3, 5, 6, 7, 4096, 1 << 20] {
            let l = run(&gz(&tar), chunk).unwrap();
            assert_eq!(
                (l.diff_id.as_str(), l.compression),
                (want.as_str(), Compression::Gzip)
            );
            assert_eq!(run(&multi, chunk).unwrap().diff_id, want);
            let p = run(&tar, chunk).unwrap();
            assert_eq!(
                (p.diff_id.as_str(), p.compression, p.size),
                (want.as_str(), Compression::None, tar.len() as u64)
            );
        }
        // Tiny and empty blobs are plain.
        assert_eq!(run(b"ab", 1).unwrap().compression, Compression::None);
        assert_eq!(run(b"", 1).unwrap().diff_id, sha256_digest(b""));
        // The empty tar, gzipped: a3ed95… decompresses to 5f70bf….
        let empty = gz(&[0u8; 1024]);
        assert_eq!(run(&empty, 9).unwrap().diff_id, sha256_digest(&[0u8; 1024]));
    }

    #[test]
    fn refused() {
        assert_eq!(
            run(b"BZh91AY&SY", 4).unwrap_err(),
            LayerError::Unsupported("bzip2")
        );
        assert_eq!(
            run(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1], 2).unwrap_err(),
            LayerError::Unsupported("xz")
        );
        assert_eq!(
            run(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0], 6).unwrap_err(),
            LayerError::Unsupported("zstd")
        );
        assert!(matches!(
            run(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3], 5),
            Err(LayerError::Gzip(_))
        ));
        let mut d = DiffId::new();
        d.update(b"data").unwrap();
        assert!(matches!(
            d.finish("sha256:00"),
            Err(LayerError::Digest { .. })
        ));
    }
}
