//! The convert journal: one JSON line per thing done, synced as it is
//! written, so a run killed at any point can be started again and skips
//! what was already converted. A torn last line is ignored.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {source}")]
pub struct JournalError {
    path: String,
    source: std::io::Error,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A tag now points at the converted manifest.
    Tag {
        repository: String,
        image: String,
        tag: String,
        old: String,
        new: String,
        media_type: String,
    },
    /// About to move a tag: if no `Tag` line follows (killed in between),
    /// the next run checks where the tag points and completes the record.
    Writing {
        repository: String,
        image: String,
        tag: String,
        old: String,
        new: String,
        media_type: String,
    },
    /// An image was left alone, and why.
    Skip {
        repository: String,
        image: String,
        digest: String,
        reason: String,
    },
    /// The old manifest was deleted (`--delete-old`).
    Deleted {
        repository: String,
        image: String,
        old: String,
    },
}

pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    /// (repository, image, tag, old digest) already converted.
    done: HashSet<(String, String, String, String)>,
    /// `Writing` lines with no `Tag` line after them.
    pending: Vec<Event>,
}

impl Journal {
    /// Reads what an earlier run did; `write` false (dry run) never creates
    /// or appends to the file.
    pub fn open(path: &Path, write: bool) -> Result<Self, JournalError> {
        let err = |source| JournalError {
            path: path.display().to_string(),
            source,
        };
        let mut done = HashSet::new();
        let mut writing = Vec::new();
        match File::open(path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line.map_err(err)?;
                    match serde_json::from_str::<Event>(&line) {
                        Ok(Event::Tag {
                            repository,
                            image,
                            tag,
                            old,
                            ..
                        }) => {
                            done.insert((repository, image, tag, old));
                        }
                        Ok(w @ Event::Writing { .. }) => writing.push(w),
                        _ => {}
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let file = if write {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(err)?;
            // A line torn by a kill would glue onto the next one.
            if f.metadata().map_err(err)?.len() > 0 && !ends_with_newline(path) {
                f.write_all(b"\n").map_err(err)?;
            }
            Some(f)
        } else {
            None
        };
        let pending = writing
            .into_iter()
            .filter(|w| match w {
                Event::Writing {
                    repository,
                    image,
                    tag,
                    old,
                    ..
                } => !done.contains(&(repository.clone(), image.clone(), tag.clone(), old.clone())),
                _ => false,
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            done,
            pending,
        })
    }

    /// Tag writes an earlier run started and never recorded as done.
    pub fn pending(&self) -> &[Event] {
        &self.pending
    }

    pub fn converted(&self, repository: &str, image: &str, tag: &str, old: &str) -> bool {
        self.done.contains(&(
            repository.to_string(),
            image.to_string(),
            tag.to_string(),
            old.to_string(),
        ))
    }

    pub fn record(&mut self, e: &Event) -> Result<(), JournalError> {
        if let Event::Tag {
            repository,
            image,
            tag,
            old,
            ..
        } = e
        {
            self.done
                .insert((repository.clone(), image.clone(), tag.clone(), old.clone()));
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(e).unwrap_or_default();
        line.push(b'\n');
        let err = |source| JournalError {
            path: self.path.display().to_string(),
            source,
        };
        f.write_all(&line).map_err(err)?;
        f.sync_data().map_err(err)
    }
}

fn ends_with_newline(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return true;
    };
    let mut b = [0u8; 1];
    f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut b).is_ok() && b[0] == b'\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_after_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("dockgate-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j.jsonl");
        let _ = std::fs::remove_file(&path);
        let tag = |t: &str| Event::Tag {
            repository: "r".into(),
            image: "i".into(),
            tag: t.into(),
            old: "sha256:o".into(),
            new: "sha256:n".into(),
            media_type: "m".into(),
        };
        let mut j = Journal::open(&path, true).unwrap();
        j.record(&tag("a")).unwrap();
        drop(j);
        // A kill in the middle of a write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"event":"tag","repos"#).unwrap();
        drop(f);
        let mut j = Journal::open(&path, true).unwrap();
        assert!(j.converted("r", "i", "a", "sha256:o"));
        assert!(!j.converted("r", "i", "b", "sha256:o"));
        j.record(&tag("b")).unwrap();
        let j = Journal::open(&path, false).unwrap();
        assert!(j.converted("r", "i", "b", "sha256:o"));
        // A dry run never creates the file.
        let other = dir.join("none.jsonl");
        let _ = std::fs::remove_file(&other);
        let mut j = Journal::open(&other, false).unwrap();
        j.record(&tag("c")).unwrap();
        assert!(!other.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
