//! The dockgate command line: parse, call the library, map errors to exit codes.

use clap::{CommandFactory, Parser, Subcommand};
use dockgate::admin::users::UserError;
use dockgate::policy::auth::AuthError;
use dockgate::server::{self, ServeError};
use dockgate::state::{Mode, StateError};
use dockgate::tls::{self, TlsError};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

// jemalloc: glibc malloc was 13% of a small request's CPU and made manifest
// rounds bimodal under mixed load; jemalloc also returns idle-connection
// memory (measured in bench/).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `0.1.0 (commit 0123abcd4567)`: the commit comes from build.rs.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("DOCKGATE_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "dockgate",
    version = VERSION,
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
        /// Config file (TOML).
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
    },
    /// Make and diagnose certificates that docker and other Go clients accept.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Manage gateway users ([auth] htpasswd) and their API keys.
    #[command(subcommand)]
    User(UserCommand),
    /// Several instances sharing runtime state in etcd ([cluster]).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Find schema1 images stored behind the gateway and convert them in place.
    #[command(subcommand)]
    Schema1(dockgate::migrate::Schema1Command),
    /// Sign in through the gateway's single sign-on (device flow) and keep the
    /// token for docker-credential-dockgate.
    Login {
        /// The gateway, as docker addresses it (host or host:port).
        host: String,
        /// Sign-in provider ([auth.sso.<name>]); needed when there are several.
        #[arg(long)]
        provider: Option<String>,
        /// CA certificate (PEM) to trust for the gateway, besides the system's.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (dockgate.1 and one per subcommand) into a directory.
    Man {
        /// Directory the pages are written to.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Print the etcd members, the leader, the revision and each member's lag.
    Status {
        /// Config file (TOML) with the [cluster] section.
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
    },
    /// Publish a new token signing key; the old ones are accepted until their tokens expire.
    RotateKeys {
        /// Config file (TOML) with the [cluster] section.
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user, or set a new password; asks for it without echo.
    Add {
        /// User name (letters, digits and . _ - @).
        name: String,
        /// Config file (TOML) whose [auth] htpasswd is edited.
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
        /// Read the password from standard input (one line) instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Invalidate the user's API key and refresh tokens (a new key is issued by /v2/auth).
    RevokeKeys {
        /// User name.
        name: String,
        /// Config file (TOML) whose [auth] state_dir holds the key generations.
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
    },
    /// List the users in the htpasswd file, one per line.
    List {
        /// Config file (TOML) whose [auth] htpasswd is read.
        #[arg(long, short, default_value = "/etc/dockgate/dockgate.toml")]
        config: PathBuf,
    },
    /// Remove a user from the htpasswd file and revoke their API key and refresh tokens.
    Delete {
        /// User name.
        name: String,
        /// Config file (TOML) whose [auth] htpasswd is edited.
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
        /// Key type of a new CA and of the server certificate.
        #[arg(long, default_value = "ecdsa-p256", value_parser = ["ecdsa-p256", "rsa-2048", "rsa-3072", "rsa-4096"])]
        key_type: String,
        /// Server certificate validity in days (the CA gets 10 years).
        #[arg(long, default_value_t = tls::generate::DEFAULT_DAYS)]
        days: u32,
        /// The port dockgate serves on: the trust directory names <host:port> with it.
        #[arg(long, default_value_t = 5443)]
        port: u16,
    },
    /// Show a certificate and whether Go-based clients will accept it.
    Inspect {
        /// PEM certificate file (leaf first; a chain is allowed).
        file: PathBuf,
        /// The address clients dial, HOST:PORT (IPv6 as [::1]:5443).
        #[arg(long)]
        host: Option<String>,
    },
}

fn init_logging() {
    use std::io::IsTerminal;
    // rustls warns on every handshake from clients that send an IP as SNI.
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    // Colour codes only for a person at a terminal: journald and log files
    // would store them verbatim (https://no-color.org).
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .init();
}

/// Outside `serve`, a closed stdout (`dockgate … | head -1`) ends the
/// process quietly, as it does for other Unix tools, instead of a panic in
/// `println!`. `serve` keeps Rust's SIGPIPE-ignored default: a client
/// hanging up must be an error on that socket, not the end of the gateway.
fn quiet_on_closed_pipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: called first thing in main, before any other thread exists;
    // SIG_DFL installs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// `dockgate check`: each OIDC provider's discovery document must answer.
fn sso_discovery(cfg: &dockgate::config::Config) -> Vec<String> {
    let Some(a) = cfg.auth.as_ref().filter(|a| !a.sso.is_empty()) else {
        return Vec::new();
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(dockgate::sso::Sso::check_discovery(a)),
        Err(e) => vec![format!("cannot check sign-in providers: {e}")],
    }
}

/// A runtime failure (exit 1).
fn fail(e: impl std::fmt::Display) -> ExitCode {
    fail_with(1, e)
}

/// Exit codes (README "Exit codes"): 0 ok, 1 runtime failure, 2 usage or
/// config error (clap's own usage errors are 2 too), 3 certificate problem.
/// The `*_code` functions below choose by the error's variant.
fn fail_with(code: u8, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("dockgate: {e}");
    ExitCode::from(code)
}

fn fail_state(e: &StateError) -> ExitCode {
    fail_with(state_code(e), e)
}

fn state_code(e: &StateError) -> u8 {
    match e {
        StateError::Config(_)
        | StateError::Backend { .. }
        | StateError::NoHtpasswd { .. }
        | StateError::StateDir { .. }
        | StateError::NoAuth { .. }
        | StateError::NoCluster { .. }
        | StateError::Cluster { .. } => 2,
        StateError::Auth { source, .. } => auth_code(source),
        StateError::Tls { .. } => 3,
        StateError::Kept(_) | StateError::Store(_) | StateError::Task(_) => 1,
    }
}

/// A file the config names that does not parse or cannot be read is a
/// config error; one that cannot be written, or a failure of the machine
/// (randomness, hashing, the state store), is a runtime failure.
fn auth_code(e: &AuthError) -> u8 {
    match e {
        AuthError::Write(_)
        | AuthError::Store(_)
        | AuthError::Bcrypt(_)
        | AuthError::NoRandomness
        | AuthError::KeyGeneration => 1,
        _ => 2,
    }
}

fn serve_code(e: &ServeError) -> u8 {
    match e {
        ServeError::Prepare(e) | ServeError::Start(e) => state_code(e),
        ServeError::Certs { .. } => 3,
        ServeError::Listen { .. }
        | ServeError::NoListener { .. }
        | ServeError::RuntimeDir { .. }
        | ServeError::AccessLog { .. }
        | ServeError::Metrics(_)
        | ServeError::Cache { .. }
        | ServeError::Tls(_) => 1,
    }
}

fn tls_code(e: &TlsError) -> u8 {
    match e {
        TlsError::Config { source, .. } => tls_code(source),
        TlsError::InvalidOptions(_)
        | TlsError::InvalidConfig(_)
        | TlsError::InvalidHost { .. }
        | TlsError::Detect(_) => 2,
        TlsError::Io { .. } | TlsError::Generate(_) | TlsError::KeyGeneration { .. } => 1,
        _ => 3,
    }
}

fn user_code(e: &UserError) -> u8 {
    match e {
        UserError::BadName(_) | UserError::EmptyPassword => 2,
        UserError::Hash(_) | UserError::Read { .. } | UserError::File(_) => 1,
    }
}

fn main() -> ExitCode {
    // Commands that talk to etcd write to sockets with writev, which a
    // closing peer would answer with SIGPIPE: they keep it ignored.
    let networked = ["serve", "check", "cluster", "user"];
    if !matches!(std::env::args_os().nth(1), Some(a) if networked.iter().any(|n| a == *n)) {
        quiet_on_closed_pipe();
    }
    // Called as docker-credential-dockgate (a link): the credential helper.
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args
        .first()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name());
    if argv0.is_some_and(|n| n.to_string_lossy().starts_with("docker-credential-")) {
        return ExitCode::from(dockgate::sso::helper::main(&args) as u8);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Login { host, provider, ca } => {
            match dockgate::sso::cli::run(dockgate::sso::cli::LoginArgs { host, provider, ca }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::Serve { config } => {
            init_logging();
            match server::serve(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail_with(serve_code(&e), e),
            }
        }
        Command::Check { config } => match dockgate::state::prepare(&config, Mode::Check) {
            Ok(p) => {
                if let Err(e) = dockgate::state::cli::probe(&p.cfg) {
                    return fail_state(&e);
                }
                for w in dockgate::config::warnings(&p.cfg) {
                    eprintln!("dockgate: warning: {w}");
                }
                // A provider that is down must not stop the gateway (check runs
                // before start): reported, not fatal.
                for w in sso_discovery(&p.cfg) {
                    eprintln!("dockgate: warning: {w}");
                }
                println!(
                    "{}: ok ({} listeners, {} backends, {} repositories)",
                    config.display(),
                    p.cfg.listeners.len(),
                    p.cfg.backends.len(),
                    p.cfg.repositories.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail_state(&e),
        },
        Command::Cert(c) => cert(c),
        Command::User(u) => user(u),
        Command::Cluster(c) => cluster(c),
        Command::Schema1(c) => dockgate::migrate::run(c),
        Command::Completions { shell } => {
            dockgate::docs::completions(Cli::command(), shell, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { out } => match dockgate::docs::man_pages(Cli::command(), &out) {
            Ok(pages) => {
                for p in pages {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
    }
}

fn user(u: UserCommand) -> ExitCode {
    match u {
        UserCommand::Add {
            name,
            config,
            password_stdin,
        } => {
            let auth = match dockgate::state::cli::auth(&config) {
                Ok(a) => a,
                Err(e) => return fail_state(&e),
            };
            let password = if password_stdin {
                let mut line = String::new();
                match std::io::stdin().read_line(&mut line) {
                    Ok(_) => line.trim_end_matches(['\r', '\n']).to_string(),
                    Err(e) => return fail(e),
                }
            } else {
                match ask_password(&name) {
                    Ok(p) => p,
                    Err(e) => return fail(e),
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
                Err(e) => fail_with(user_code(&e), e),
            }
        }
        UserCommand::RevokeKeys { name, config } => {
            match dockgate::state::cli::revoke_keys(&config, &name) {
                Ok(g) => {
                    println!("{name}: API key and refresh tokens revoked (generation {g})");
                    ExitCode::SUCCESS
                }
                Err(e) => fail_state(&e),
            }
        }
        UserCommand::List { config } => {
            let auth = match dockgate::state::cli::auth(&config) {
                Ok(a) => a,
                Err(e) => return fail_state(&e),
            };
            match dockgate::admin::users::list(&auth.htpasswd) {
                Ok(names) => {
                    for n in names {
                        println!("{n}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail_with(user_code(&e), e),
            }
        }
        UserCommand::Delete { name, config } => {
            let auth = match dockgate::state::cli::auth(&config) {
                Ok(a) => a,
                Err(e) => return fail_state(&e),
            };
            match dockgate::admin::users::delete(&auth.htpasswd, &name) {
                Ok(false) => fail(format!(
                    "{name}: no such user in {}",
                    auth.htpasswd.display()
                )),
                Ok(true) => {
                    // A user added again later must not get the old API key back.
                    if let Err(e) = dockgate::state::cli::revoke_keys(&config, &name) {
                        return fail_state(&e);
                    }
                    println!("{name}: deleted from {}", auth.htpasswd.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail_with(user_code(&e), e),
            }
        }
    }
}

fn cluster(c: ClusterCommand) -> ExitCode {
    match c {
        ClusterCommand::Status { config } => match dockgate::state::cli::status(&config) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail_state(&e),
        },
        ClusterCommand::RotateKeys { config } => match dockgate::state::cli::rotate_keys(&config) {
            Ok((n, keep)) => {
                println!(
                    "token signing key rotated: {n} keys accepted; the previous ones until \
                     their tokens expire ({} s)",
                    keep.as_secs()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail_state(&e),
        },
    }
}

#[derive(Debug, thiserror::Error)]
enum PasswordError {
    #[error(
        "no terminal to ask for the password on; pipe it in instead: \
         printf '%s\\n' \"$PASSWORD\" | dockgate user add {0} --password-stdin …"
    )]
    NoTerminal(String),
    #[error("the passwords differ")]
    Differ,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Asks twice on the terminal, without echo.
fn ask_password(name: &str) -> Result<String, PasswordError> {
    use std::io::IsTerminal;
    let no_tty = || PasswordError::NoTerminal(name.to_string());
    // rpassword reads /dev/tty; without one its error is "No such device or address".
    if std::fs::File::open("/dev/tty").is_err() && !std::io::stdin().is_terminal() {
        return Err(no_tty());
    }
    let first = rpassword::prompt_password(format!("Password for {name}: "));
    let again = rpassword::prompt_password("Again: ");
    match (first, again) {
        (Ok(a), Ok(b)) if a == b => Ok(a),
        (Ok(_), Ok(_)) => Err(PasswordError::Differ),
        (Err(e), _) | (_, Err(e)) if e.raw_os_error() == Some(6) => Err(no_tty()),
        (Err(e), _) | (_, Err(e)) => Err(e.into()),
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
                Err(e) => return fail_with(2, e),
            };
            opts.days = days;
            let written = tls::generate(&opts).and_then(|r| {
                let addrs = r.sans.registry_addresses(port);
                let trust = tls::write_trust_dir(&opts.out_dir, &r.ca_cert, &addrs)?;
                Ok((r, trust))
            });
            match written {
                Ok((r, trust)) => {
                    println!("{r}\n{trust}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail_with(tls_code(&e), e),
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
            Err(e) => fail_with(tls_code(&e), e),
        },
    }
}
