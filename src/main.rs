//! The dockgate command line: parse, call the library, map errors to exit codes.

use clap::{Parser, Subcommand};
use dockgate::runtime::Mode;
use dockgate::server;
use dockgate::tls;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

// jemalloc: glibc malloc was 13% of a small request's CPU and made manifest
// rounds bimodal under mixed load; jemalloc also returns idle-connection
// memory (measured in bench/).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Make and diagnose certificates that docker and other Go clients accept.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Manage gateway users ([auth] htpasswd) and their API keys.
    #[command(subcommand)]
    User(UserCommand),
    /// Find schema1 images stored behind the gateway and convert them in place.
    #[command(subcommand)]
    Schema1(dockgate::migrate::Schema1Command),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user, or set a new password; asks for it without echo.
    Add {
        name: String,
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
        /// Read the password from standard input (one line) instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Invalidate the user's API key and refresh tokens (a new key is issued by /v2/auth).
    RevokeKeys {
        name: String,
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// Create (or reuse) a local CA and issue a server cert with the right SANs.
    Generate {
        /// Directory for ca.crt, ca.key, server.crt, server.key.
        #[arg(long)]
        out: PathBuf,
        /// IP address clients dial (repeatable; IPv4 or IPv6).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        /// DNS name clients dial (repeatable; `*.example.com` allowed).
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// Also add this machine's non-loopback addresses and host name.
        #[arg(long)]
        detect: bool,
        #[arg(long, default_value = "ecdsa-p256", value_parser = ["ecdsa-p256", "rsa-2048", "rsa-3072"])]
        key_type: String,
        /// Server certificate validity in days.
        #[arg(long)]
        days: Option<u32>,
        /// The port dockgate serves on, for the trust instructions.
        #[arg(long, default_value_t = 5443)]
        port: u16,
    },
    /// Show a certificate and whether Go-based clients will accept it.
    Inspect {
        file: PathBuf,
        /// The address clients dial, HOST:PORT (IPv6 as [::1]:5443).
        #[arg(long)]
        host: Option<String>,
    },
}

fn init_logging() {
    // rustls warns on every handshake from clients that send an IP as SNI.
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("dockgate: {e}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            init_logging();
            match server::serve(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::Check { config } => match dockgate::runtime::prepare(&config, Mode::Check) {
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
            Err(e) => fail(e),
        },
        Command::Cert(c) => cert(c),
        Command::User(u) => user(u),
        Command::Schema1(c) => dockgate::migrate::run(c),
    }
}

fn auth_config(config: &std::path::Path) -> Result<dockgate::config::Auth, String> {
    let cfg = dockgate::config::load(config).map_err(|e| e.to_string())?;
    cfg.auth.ok_or_else(|| {
        format!(
            "{}: auth: no [auth] section, so dockgate has no users",
            config.display()
        )
    })
}

fn user(u: UserCommand) -> ExitCode {
    match u {
        UserCommand::Add {
            name,
            config,
            password_stdin,
        } => {
            let auth = match auth_config(&config) {
                Ok(a) => a,
                Err(e) => return fail(e),
            };
            let password = if password_stdin {
                let mut line = String::new();
                match std::io::stdin().read_line(&mut line) {
                    Ok(_) => line.trim_end_matches(['\r', '\n']).to_string(),
                    Err(e) => return fail(e),
                }
            } else {
                let first = rpassword::prompt_password(format!("Password for {name}: "));
                let again = rpassword::prompt_password("Again: ");
                match (first, again) {
                    (Ok(a), Ok(b)) if a == b => a,
                    (Ok(_), Ok(_)) => return fail("the passwords differ"),
                    (Err(e), _) | (_, Err(e)) => return fail(e),
                }
            };
            match dockgate::admin::users::add(&auth.htpasswd, &name, &password) {
                Ok(replaced) => {
                    let what = if replaced {
                        "password changed"
                    } else {
                        "added"
                    };
                    println!("{name}: {what} in {}", auth.htpasswd.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        UserCommand::RevokeKeys { name, config } => {
            let auth = match auth_config(&config) {
                Ok(a) => a,
                Err(e) => return fail(e),
            };
            match dockgate::policy::auth::keys::revoke(&auth.state_dir, &name) {
                Ok(g) => {
                    println!("{name}: API key and refresh tokens revoked (generation {g})");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}

fn cert(c: CertCommand) -> ExitCode {
    match c {
        CertCommand::Generate {
            out,
            ips,
            dns,
            detect,
            key_type,
            days,
            port,
        } => {
            let mut opts = tls::GenerateOptions::new(out);
            opts.ips = ips;
            opts.dns = dns;
            opts.detect = detect;
            opts.key_type = match key_type.parse() {
                Ok(k) => k,
                Err(e) => return fail(e),
            };
            if let Some(d) = days {
                opts.days = d;
            }
            match tls::generate(&opts) {
                Ok(r) => {
                    print!("{r}");
                    for addr in r.sans.registry_addresses(port) {
                        println!("\n{}", r.trust_instructions(&addr));
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        CertCommand::Inspect { file, host } => match tls::inspect(&file, host.as_deref()) {
            Ok(r) => {
                print!("{r}");
                match r.verdict {
                    Some(v) if !v.accepted() => ExitCode::from(2),
                    _ => ExitCode::SUCCESS,
                }
            }
            Err(e) => fail(e),
        },
    }
}
