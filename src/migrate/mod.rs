//! `dockgate schema1 …`: find the schema1 manifests already stored behind
//! the gateway (scan) and convert them in place (convert). Runs outside
//! pingora on a tokio runtime of its own.

pub mod aql;
pub mod classify;
pub mod client;
pub mod config_v1;
pub mod convert;
pub mod journal;
pub mod layer;
pub mod output;
pub mod progress;
pub mod scan;
pub mod schema1;

pub use progress::Progress;

use crate::config::{Config, Repository};
use client::Client;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{file}: {source}")]
    Backend {
        file: String,
        #[source]
        source: crate::upstream::UpstreamError,
    },
    #[error("{file}: repositories.{key}: no such repository")]
    NoRepository { file: String, key: String },
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
}

#[derive(Debug, clap::Subcommand)]
pub enum Schema1Command {
    /// List every schema1 manifest stored behind the configured repositories.
    /// Exit 0: none found; 1: schema1 found; 2: some backend or tag failed.
    Scan {
        /// Config file (TOML) naming the repositories and backends.
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
        /// Only this repository key (repeatable); default: all.
        #[arg(long = "repository")]
        repositories: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = output::Format::Table)]
        format: output::Format,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Convert schema1 images in place to schema2 (or OCI): every tag that
    /// pointed at a schema1 manifest then points at the converted one.
    /// Exit 0: all converted (or none found); 1: some skipped; 2: errors.
    Convert {
        /// Config file (TOML).
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
        /// Only this repository key; default: all.
        #[arg(long)]
        repository: Option<String>,
        /// Only this image (as clients name it), optionally one tag: NAME[:TAG].
        #[arg(long)]
        image: Option<String>,
        /// Target: v2s2 (lossless, byte-identical to `skopeo copy --format v2s2`) or oci.
        #[arg(long, value_enum, default_value_t = convert::Format::V2s2)]
        format: convert::Format,
        /// Print the plan (old → new digest per image) and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Delete the old manifest once no tag points at it (pulls by the old digest break).
        #[arg(long)]
        delete_old: bool,
        /// JSON-lines record of what was done; a rerun skips what it lists.
        #[arg(long, default_value = "dockgate-schema1-journal.jsonl")]
        journal: PathBuf,
        /// Requests in flight at once while scanning.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
}

/// Exit codes of `scan`.
pub const EXIT_FOUND: u8 = 1;
pub const EXIT_ERRORS: u8 = 2;

pub fn run(cmd: Schema1Command) -> ExitCode {
    let r = match cmd {
        Schema1Command::Scan {
            config,
            repositories,
            format,
            concurrency,
        } => run_scan(&config, &repositories, format, concurrency),
        Schema1Command::Convert {
            config,
            repository,
            image,
            format,
            dry_run,
            delete_old,
            journal,
            concurrency,
        } => run_convert(
            &config,
            repository,
            image.as_deref(),
            convert::Options {
                format,
                dry_run,
                delete_old,
                tag: None,
            },
            &journal,
            concurrency,
        ),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dockgate: {e}");
            ExitCode::from(EXIT_ERRORS)
        }
    }
}

/// What every subcommand starts from.
pub struct Setup {
    pub cfg: Arc<Config>,
    pub client: Client,
    pub repos: Vec<Arc<Repository>>,
}

/// The config, a client for its backends, and the chosen repositories.
pub fn setup(path: &std::path::Path, keys: &[String]) -> Result<Setup, MigrateError> {
    let cfg = crate::config::load(path)?;
    let peers = crate::upstream::Peers::load(&cfg).map_err(|source| MigrateError::Backend {
        file: path.display().to_string(),
        source,
    })?;
    let repos = select(&cfg, keys)?;
    let connector = Arc::new(pingora::connectors::http::Connector::new(None));
    Ok(Setup {
        cfg: Arc::new(cfg),
        client: Client::new(connector, peers),
        repos,
    })
}

/// The repositories named (all when none).
pub fn select(cfg: &Config, keys: &[String]) -> Result<Vec<Arc<Repository>>, MigrateError> {
    if keys.is_empty() {
        return Ok(cfg.repositories.values().cloned().collect());
    }
    keys.iter()
        .map(|k| {
            cfg.repositories
                .get(k)
                .cloned()
                .ok_or_else(|| MigrateError::NoRepository {
                    file: cfg.path.display().to_string(),
                    key: k.clone(),
                })
        })
        .collect()
}

pub fn runtime() -> Result<tokio::runtime::Runtime, MigrateError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(MigrateError::Runtime)
}

fn run_scan(
    config: &std::path::Path,
    keys: &[String],
    format: output::Format,
    concurrency: usize,
) -> Result<ExitCode, MigrateError> {
    let Setup { client, repos, .. } = setup(config, keys)?;
    let rt = runtime()?;
    let progress: Arc<dyn Progress> = Arc::new(progress::Stderr::new());
    let started = std::time::Instant::now();
    let report = rt.block_on(scan::scan(&client, &repos, concurrency, progress));
    print!("{}", output::render(&report, format));
    let s = &report.summary;
    for e in &s.errors {
        eprintln!("error: {e}");
    }
    eprintln!(
        "scanned {} repositories, {} images, {} tags in {:.1}s: {} schema1 manifests, {} errors",
        s.repositories,
        s.images,
        s.tags,
        started.elapsed().as_secs_f64(),
        s.schema1,
        s.errors.len()
    );
    Ok(if !s.errors.is_empty() {
        ExitCode::from(EXIT_ERRORS)
    } else if s.schema1 > 0 {
        ExitCode::from(EXIT_FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

/// `NAME[:TAG]`: the tag is what follows the last `:` after the last `/`.
pub fn split_image(s: &str) -> (String, Option<String>) {
    let slash = s.rfind('/').map_or(0, |i| i + 1);
    match s[slash..].rfind(':') {
        Some(i) => (
            s[..slash + i].to_string(),
            Some(s[slash + i + 1..].to_string()),
        ),
        None => (s.to_string(), None),
    }
}

fn run_convert(
    config: &std::path::Path,
    repository: Option<String>,
    image: Option<&str>,
    mut opts: convert::Options,
    journal: &std::path::Path,
    concurrency: usize,
) -> Result<ExitCode, MigrateError> {
    let keys: Vec<String> = repository.into_iter().collect();
    let Setup { client, repos, .. } = setup(config, &keys)?;
    let (name, tag) = match image {
        Some(i) => {
            let (n, t) = split_image(i);
            (Some(n), t)
        }
        None => (None, None),
    };
    opts.tag = tag;
    let mut journal = journal::Journal::open(journal, !opts.dry_run)?;
    let rt = runtime()?;
    let progress = progress::Stderr::new();
    let shared: Arc<dyn Progress> = Arc::new(progress::Stderr::new());
    let (mut converted, mut skipped) = (0usize, 0usize);
    if !opts.dry_run {
        match rt.block_on(convert::settle(&client, &repos, &mut journal)) {
            Ok(0) => {}
            Ok(n) => eprintln!("{n} tag writes of an interrupted run confirmed and recorded"),
            Err(e) => eprintln!("error: checking the interrupted run's last writes: {e}"),
        }
    }
    let report = rt.block_on(scan::scan(&client, &repos, concurrency, shared));
    for e in &report.summary.errors {
        eprintln!("error: {e}");
    }
    let rows: Vec<&scan::Row> = report
        .rows
        .iter()
        .filter(|r| name.as_ref().is_none_or(|n| *n == r.image))
        .filter(|r| opts.tag.as_ref().is_none_or(|t| r.tags.contains(t)))
        .collect();
    let count = rows.len();
    for (i, row) in rows.into_iter().enumerate() {
        progress.item(i + 1, count);
        let Some(repo) = repos.iter().find(|r| r.key == row.repository) else {
            continue;
        };
        let what = format!(
            "repository {} image {}@{} (tags {})",
            row.repository,
            row.image,
            row.digest,
            row.tags.join(", ")
        );
        let got = rt.block_on(convert::convert_one(
            &client,
            repo,
            row,
            &opts,
            &mut journal,
            &progress,
        ));
        match got {
            Ok(o) => {
                let verb = if opts.dry_run {
                    "would convert"
                } else {
                    "converted"
                };
                println!(
                    "{verb} {}/{}@{} -> {} (tags {})",
                    row.repository,
                    row.image,
                    row.digest,
                    o.new_digest,
                    o.converted.join(", ")
                );
                for n in &o.notes {
                    println!("  {n}");
                }
                converted += 1;
            }
            Err(reason) => {
                eprintln!("skipped {what}: {reason}");
                if !opts.dry_run {
                    journal.record(&journal::Event::Skip {
                        repository: row.repository.clone(),
                        image: row.image.clone(),
                        digest: row.digest.clone(),
                        reason: reason.to_string(),
                    })?;
                }
                skipped += 1;
            }
        }
    }
    eprintln!(
        "{converted} images {}, {skipped} skipped, {} scan errors, {} of layers read",
        if opts.dry_run {
            "to convert"
        } else {
            "converted"
        },
        report.summary.errors.len(),
        indicatif::HumanBytes(progress.grand_total())
    );
    Ok(if !report.summary.errors.is_empty() {
        ExitCode::from(EXIT_ERRORS)
    } else if skipped > 0 {
        ExitCode::from(EXIT_FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_and_tag() {
        let cases = [
            ("app", ("app", None)),
            ("app:v1", ("app", Some("v1"))),
            ("team/app:v1", ("team/app", Some("v1"))),
            ("team/app", ("team/app", None)),
        ];
        for (i, (n, t)) in cases {
            assert_eq!(
                super::split_image(i),
                (n.to_string(), t.map(str::to_string)),
                "{i}"
            );
        }
    }
}
