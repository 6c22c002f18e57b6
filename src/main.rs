//! The dockgate command line: parse, call the library, map errors to exit codes.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "dockgate",
    version,
    about = "TLS gateway for Docker/OCI registries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (TOML).
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
    },
    /// Validate the config, its certificates and backend CAs, then exit 0 or 1.
    Check {
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            init_logging();
            match dockgate::server::serve(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("dockgate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { config } => match dockgate::server::prepare(&config) {
            Ok(p) => {
                println!(
                    "{}: ok ({} listeners, {} backends, {} repositories)",
                    config.display(),
                    p.cfg.listeners.len(),
                    p.cfg.backends.len(),
                    p.cfg.repositories.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dockgate: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
