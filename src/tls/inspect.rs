//! `dockgate cert inspect FILE [--host HOST:PORT]`: what a certificate
//! says, and whether Go-based registry clients will accept it.

use std::fmt;
use std::path::{Path, PathBuf};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::tls::generate::ip_from_bytes;
use crate::tls::verdict::{go_verdict, rfc3339, CertFacts, DialTarget, Eku, Verdict};
use crate::tls::{pem, Result, TlsError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectReport {
    pub path: PathBuf,
    /// Certificates in the file; the first (the leaf) is described.
    pub chain_len: usize,
    pub subject: String,
    pub issuer: String,
    pub self_signed: bool,
    pub serial: String,
    pub facts: CertFacts,
    /// SANs other than DNS and IP (email, URI, ...), as text.
    pub other_sans: Vec<String>,
    pub key_type: String,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    pub key_usage: Vec<&'static str>,
    pub ext_key_usage: Vec<String>,
    pub now: i64,
    pub verdict: Option<Verdict>,
}

/// Describe the first certificate of `path`; with `host` ("HOST:PORT",
/// "HOST", "[::1]:5443"), also predict Go clients' verdict.
pub fn inspect(path: &Path, host: Option<&str>) -> Result<InspectReport> {
    inspect_at(path, host, time::OffsetDateTime::now_utc().unix_timestamp())
}

/// [`inspect`] at a given time (unix seconds).
pub fn inspect_at(path: &Path, host: Option<&str>, now: i64) -> Result<InspectReport> {
    let target = host.map(DialTarget::parse).transpose()?;
    let chain = pem::load_cert_chain(path)?;
    let leaf = chain.first().ok_or_else(|| TlsError::NoCertificate {
        path: path.to_path_buf(),
    })?;
    let (_, x509) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let (facts, other_sans) = facts(&x509);
    let bc = x509.basic_constraints().ok().flatten().map(|b| b.value);
    Ok(InspectReport {
        path: path.to_path_buf(),
        chain_len: chain.len(),
        subject: x509.subject().to_string(),
        issuer: x509.issuer().to_string(),
        self_signed: x509.subject().as_raw() == x509.issuer().as_raw(),
        serial: x509.raw_serial_as_string(),
        verdict: target.map(|t| go_verdict(&facts, &t, now)),
        facts,
        other_sans,
        key_type: key_type(&x509),
        is_ca: bc.is_some_and(|b| b.ca),
        path_len: bc.and_then(|b| b.path_len_constraint),
        key_usage: key_usage(&x509),
        ext_key_usage: ext_key_usage(&x509),
        now,
    })
}

/// The verdict's input, taken from a parsed certificate.
pub fn facts(x509: &X509Certificate<'_>) -> (CertFacts, Vec<String>) {
    let mut facts = CertFacts {
        common_name: x509
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
        not_before: x509.validity().not_before.timestamp(),
        not_after: x509.validity().not_after.timestamp(),
        ..CertFacts::default()
    };
    let mut other = Vec::new();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        facts.has_san_extension = true;
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => facts.dns_sans.push(d.to_string()),
                GeneralName::IPAddress(b) => match ip_from_bytes(b) {
                    Some(ip) => facts.ip_sans.push(ip),
                    None => other.push(format!("IP:<{} bytes>", b.len())),
                },
                other_name => other.push(other_name.to_string()),
            }
        }
    }
    if let Ok(Some(eku)) = x509.extended_key_usage() {
        facts.eku = Some(Eku {
            server_auth: eku.value.server_auth,
            any: eku.value.any,
        });
    }
    (facts, other)
}

fn key_type(x509: &X509Certificate<'_>) -> String {
    let spki = x509.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let param = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    match (alg.as_str(), param.as_deref()) {
        ("1.2.840.113549.1.1.1", _) => match spki.parsed() {
            Ok(k) => format!("RSA {} bits", k.key_size()),
            Err(_) => "RSA".into(),
        },
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => "ECDSA P-256".into(),
        ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => "ECDSA P-384".into(),
        ("1.2.840.10045.2.1", Some("1.3.132.0.35")) => "ECDSA P-521".into(),
        ("1.2.840.10045.2.1", p) => format!("ECDSA (curve {})", p.unwrap_or("?")),
        ("1.3.101.112", _) => "Ed25519".into(),
        (other, _) => format!("unknown ({other})"),
    }
}

fn key_usage(x509: &X509Certificate<'_>) -> Vec<&'static str> {
    let Ok(Some(ku)) = x509.key_usage() else {
        return Vec::new();
    };
    let ku = ku.value;
    [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect()
}

fn ext_key_usage(x509: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(eku)) = x509.extended_key_usage() else {
        return Vec::new();
    };
    let e = eku.value;
    let known = [
        (e.any, "any"),
        (e.server_auth, "serverAuth"),
        (e.client_auth, "clientAuth"),
        (e.code_signing, "codeSigning"),
        (e.email_protection, "emailProtection"),
        (e.time_stamping, "timeStamping"),
        (e.ocsp_signing, "OCSPSigning"),
    ];
    let mut out: Vec<String> = known
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| name.to_string())
        .collect();
    out.extend(e.other.iter().map(|o| o.to_id_string()));
    out
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let f_ = &self.facts;
        let chain = match self.chain_len {
            1 => String::new(),
            n => format!("  ({n} certificates; the first is shown)"),
        };
        writeln!(f, "File:       {}{chain}", self.path.display())?;
        writeln!(f, "Subject:    {}", self.subject)?;
        if !f_.has_san_extension {
            writeln!(f, "SANs:       (no subjectAltName extension)")?;
        } else {
            writeln!(f, "SANs:       DNS: {}", list_or_none(&f_.dns_sans))?;
            let ips: Vec<String> = f_.ip_sans.iter().map(|i| i.to_string()).collect();
            writeln!(f, "            IP:  {}", list_or_none(&ips))?;
            if !self.other_sans.is_empty() {
                writeln!(f, "            other: {}", self.other_sans.join(", "))?;
            }
        }
        let issuer = if self.self_signed {
            " (self-signed)"
        } else {
            ""
        };
        writeln!(f, "Issuer:     {}{issuer}", self.issuer)?;
        writeln!(f, "Serial:     {}", self.serial)?;
        writeln!(f, "Not before: {}", rfc3339(f_.not_before))?;
        writeln!(
            f,
            "Not after:  {}  ({})",
            rfc3339(f_.not_after),
            self.days_left_text()
        )?;
        writeln!(f, "Key:        {}", self.key_type)?;
        let ca = match (self.is_ca, self.path_len) {
            (true, Some(n)) => format!("yes (pathlen {n})"),
            (true, None) => "yes".into(),
            (false, _) => "no".into(),
        };
        writeln!(f, "CA:         {ca}")?;
        let ku: Vec<String> = self.key_usage.iter().map(|s| s.to_string()).collect();
        writeln!(f, "Key usage:  {}", list_or_none(&ku))?;
        writeln!(f, "EKU:        {}", list_or_none(&self.ext_key_usage))?;
        if let Some(v) = &self.verdict {
            writeln!(f)?;
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl InspectReport {
    fn days_left_text(&self) -> String {
        let (nb, na, now) = (self.facts.not_before, self.facts.not_after, self.now);
        if now < nb {
            format!(
                "NOT YET VALID: starts in {} days",
                (nb - now).div_euclid(86_400)
            )
        } else if now > na {
            format!("EXPIRED {} days ago", (now - na).div_euclid(86_400))
        } else {
            format!("{} days left", (na - now).div_euclid(86_400))
        }
    }
}

#[cfg(test)]
mod tests;
