//! `dockgate schema1 …`: find the schema1 manifests already stored behind
//! the gateway (scan) and convert them in place (convert). Runs outside
//! pingora on a tokio runtime of its own.

pub mod classify;
pub mod client;
pub mod output;
pub mod progress;
pub mod scan;

pub use progress::Progress;

use crate::config::{Config, Repository};
use client::Client;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Config(String),
    #[error("{file}: repositories.{key}: no such repository")]
    NoRepository { file: String, key: String },
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
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
    let cfg = crate::config::load(path).map_err(|e| MigrateError::Config(e.to_string()))?;
    let peers = crate::upstream::Peers::load(&cfg)
        .map_err(|e| MigrateError::Config(format!("{}: {e}", path.display())))?;
    let repos = select(&cfg, keys).map_err(|key| MigrateError::NoRepository {
        file: path.display().to_string(),
        key,
    })?;
    let connector = Arc::new(pingora::connectors::http::Connector::new(None));
    Ok(Setup {
        cfg: Arc::new(cfg),
        client: Client::new(connector, peers),
        repos,
    })
}

/// The repositories named (all when none); Err(key) for an unknown key.
pub fn select(cfg: &Config, keys: &[String]) -> Result<Vec<Arc<Repository>>, String> {
    if keys.is_empty() {
        return Ok(cfg.repositories.values().cloned().collect());
    }
    keys.iter()
        .map(|k| cfg.repositories.get(k).cloned().ok_or_else(|| k.clone()))
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
