//! `dockgate cert generate`: a local CA (reused, never silently
//! replaced) and a server certificate whose subjectAltName holds every
//! address clients dial.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::tls::issue::{self, Ca};
use crate::tls::{detect, Result, TlsError};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.crt";
pub const SERVER_KEY: &str = "server.key";
/// Default server cert validity: public CAs may issue at most 200 days
/// since March 2026 (CA/B Forum SC-081), and Mozilla's "intermediate"
/// profile at most 366. Serve re-issues within 30 days of the end.
pub const DEFAULT_DAYS: u32 = 200;
/// Apple platforms refuse any TLS server cert valid for longer than this.
const APPLE_MAX_DAYS: u32 = 825;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
/// As written in `[tls] key_type` and `--key-type`. Spelled out: serde's
/// kebab-case would make `rsa2048`.
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    #[default]
    EcdsaP256,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl KeyType {
    /// The modulus size of an RSA key type.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::EcdsaP256 => None,
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::Rsa4096 => Some(4096),
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        })
    }
}

impl FromStr for KeyType {
    type Err = TlsError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ecdsa-p256" => Ok(KeyType::EcdsaP256),
            "rsa-2048" => Ok(KeyType::Rsa2048),
            "rsa-3072" => Ok(KeyType::Rsa3072),
            "rsa-4096" => Ok(KeyType::Rsa4096),
            other => Err(TlsError::InvalidOptions(format!(
                "unknown key type {other:?}: use ecdsa-p256, rsa-2048, rsa-3072 or rsa-4096"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    pub out_dir: PathBuf,
    pub ips: Vec<IpAddr>,
    pub dns: Vec<String>,
    /// Also add this machine's non-loopback addresses and host name.
    pub detect: bool,
    pub key_type: KeyType,
    /// Server cert validity in days (the CA always gets ~10 years).
    pub days: u32,
}

impl GenerateOptions {
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        GenerateOptions {
            out_dir: out_dir.into(),
            ips: Vec::new(),
            dns: Vec::new(),
            detect: false,
            key_type: KeyType::default(),
            days: DEFAULT_DAYS,
        }
    }
}

/// A server cert's subjectAltName: sorted, deduplicated, names lower-case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanSet {
    pub ips: Vec<IpAddr>,
    pub dns: Vec<String>,
}

impl SanSet {
    /// The SANs the options ask for, including `--detect`.
    pub fn from_options(opts: &GenerateOptions) -> Result<Self> {
        let mut set = SanSet {
            ips: opts.ips.clone(),
            dns: Vec::new(),
        };
        for raw in &opts.dns {
            set.dns.push(normalize_dns(raw)?);
        }
        if opts.detect {
            set.ips.extend(detect::local_addresses()?);
            set.dns.extend(detect::hostname()?);
        }
        set.tidy();
        if set.ips.is_empty() && set.dns.is_empty() {
            return Err(TlsError::InvalidOptions(
                "no subjectAltName: give at least one IP (--ip) or DNS name (--dns), or use --detect"
                    .into(),
            ));
        }
        Ok(set)
    }

    /// The SANs a parsed certificate holds.
    pub fn from_cert(cert: &x509_parser::certificate::X509Certificate<'_>) -> Self {
        use x509_parser::extensions::GeneralName;
        let mut set = SanSet::default();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => set.dns.push(d.to_ascii_lowercase()),
                    GeneralName::IPAddress(b) => set.ips.extend(ip_from_bytes(b)),
                    _ => {}
                }
            }
        }
        set.tidy();
        set
    }

    pub(crate) fn tidy(&mut self) {
        self.ips.sort();
        self.ips.dedup();
        self.dns.sort();
        self.dns.dedup();
    }

    /// The name to show as CN: the first DNS name, else the first IP.
    pub fn primary(&self) -> Option<String> {
        self.dns
            .first()
            .cloned()
            .or_else(|| self.ips.first().map(|ip| ip.to_string()))
    }

    /// `IP:x` / `DNS:y` entries, as openssl shows them.
    pub fn entries(&self) -> Vec<String> {
        let ips = self.ips.iter().map(|ip| format!("IP:{ip}"));
        ips.chain(self.dns.iter().map(|d| format!("DNS:{d}")))
            .collect()
    }

    /// Registry addresses (`host:port`) clients may use for these SANs
    /// (wildcards left out: they aren't an address).
    pub fn registry_addresses(&self, port: u16) -> Vec<String> {
        let ips = self.ips.iter().map(|ip| match ip {
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
            IpAddr::V4(v4) => format!("{v4}:{port}"),
        });
        let names = self.dns.iter().filter(|d| !d.starts_with('*'));
        ips.chain(names.map(|d| format!("{d}:{port}"))).collect()
    }
}

impl fmt::Display for SanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.entries().join(", "))
    }
}

pub(crate) fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

fn normalize_dns(raw: &str) -> Result<String> {
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Err(TlsError::InvalidOptions(format!(
            "DNS name {raw:?} is an IP address: list it as an IP (--ip {bare}); \
             Go clients dialing an IP only look at IP SANs"
        )));
    }
    let body = name.strip_prefix("*.").unwrap_or(&name);
    let ok = !body.is_empty()
        && body.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !ok {
        return Err(TlsError::InvalidOptions(format!(
            "DNS name {raw:?} is not a valid host name (wildcards only as *.example.com)"
        )));
    }
    Ok(name)
}

/// What `generate` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateReport {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// False when an existing CA was reused.
    pub ca_created: bool,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub sans: SanSet,
    pub key_type: KeyType,
    pub not_before: i64,
    pub not_after: i64,
    /// Hex, colon-separated.
    pub serial: String,
    pub warnings: Vec<String>,
}

impl fmt::Display for GenerateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ca = if self.ca_created { "new" } else { "reused" };
        writeln!(
            f,
            "CA:          {} (key {}, {ca})",
            self.ca_cert.display(),
            self.ca_key.display()
        )?;
        writeln!(
            f,
            "Server cert: {} (key {})",
            self.server_cert.display(),
            self.server_key.display()
        )?;
        writeln!(f, "SANs:        {}", self.sans)?;
        writeln!(
            f,
            "Valid:       {} to {}  ({}, serial {})",
            crate::tls::verdict::rfc3339(self.not_before),
            crate::tls::verdict::rfc3339(self.not_after),
            self.key_type,
            self.serial
        )?;
        for w in &self.warnings {
            writeln!(f, "Warning:     {w}")?;
        }
        Ok(())
    }
}

/// Create or reuse the CA in `opts.out_dir` and issue a server cert from it.
pub fn generate(opts: &GenerateOptions) -> Result<GenerateReport> {
    check_options(opts)?;
    let sans = SanSet::from_options(opts)?;
    issue_with(opts, sans)
}

pub(crate) fn check_options(opts: &GenerateOptions) -> Result<()> {
    if opts.days == 0 {
        return Err(TlsError::InvalidOptions("days must be at least 1".into()));
    }
    Ok(())
}

pub(crate) fn issue_with(opts: &GenerateOptions, sans: SanSet) -> Result<GenerateReport> {
    let dir = &opts.out_dir;
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.clone(),
        action: "create directory",
        source,
    })?;
    let (ca, ca_created): (Ca, bool) = issue::load_or_create_ca(dir, opts.key_type)?;
    let server_cert = dir.join(SERVER_CERT);
    let server_key = dir.join(SERVER_KEY);
    let issued = issue::issue_server(
        &ca,
        &sans,
        opts.key_type,
        opts.days,
        &server_cert,
        &server_key,
    )?;
    let mut warnings = Vec::new();
    if opts.days > APPLE_MAX_DAYS {
        warnings.push(format!(
            "{} days is more than {APPLE_MAX_DAYS}: macOS/iOS clients refuse such certificates",
            opts.days
        ));
    }
    if issued.clamped_to_ca {
        warnings.push("the server cert ends when the CA does; plan a new CA before then".into());
    }
    Ok(GenerateReport {
        ca_cert: dir.join(CA_CERT),
        ca_key: dir.join(CA_KEY),
        ca_created,
        server_cert,
        server_key,
        sans,
        key_type: opts.key_type,
        not_before: issued.not_before,
        not_after: issued.not_after,
        serial: issued.serial,
        warnings,
    })
}

#[cfg(test)]
mod tests;
