//! The rcgen side of `generate`: load or create the local CA, issue a
//! server certificate from it, write the files.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::tls::fsutil::{self, CERT_MODE, KEY_MODE};
use crate::tls::generate::{KeyType, SanSet};
use crate::tls::{pem, Result, TlsError};

/// The CA's validity: long, since re-trusting a CA on every client is the
/// expensive step.
const CA_DAYS: i64 = 3650;
/// Backdate notBefore so clients with a slightly slow clock accept a
/// certificate issued a moment ago.
const BACKDATE: Duration = Duration::hours(1);

pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// ca.crt as written, appended to server.crt as the chain.
    pem: String,
    pub not_after: i64,
}

/// Reuse `ca.crt` + `ca.key` in `dir`, or create both if neither exists.
/// Half a CA is an error: a new CA would silently break every client that
/// trusts the old one.
pub(crate) fn load_or_create_ca(dir: &Path, key_type: KeyType) -> Result<(Ca, bool)> {
    let crt = dir.join(super::generate::CA_CERT);
    let key = dir.join(super::generate::CA_KEY);
    let incomplete = |reason: &str| TlsError::CaIncomplete {
        dir: dir.to_path_buf(),
        reason: reason.to_string(),
    };
    match (fsutil::exists(&crt)?, fsutil::exists(&key)?) {
        (true, true) => Ok((load_ca(&crt, &key)?, false)),
        (true, false) => Err(incomplete(
            "ca.crt exists but ca.key is missing; restore ca.key (or move ca.crt away \
             to start a new CA that every client must then trust again)",
        )),
        (false, true) => Err(incomplete(
            "ca.key exists but ca.crt is missing; restore ca.crt (or move ca.key away \
             to start a new CA that every client must then trust again)",
        )),
        (false, false) => Ok((create_ca(&crt, &key, key_type)?, true)),
    }
}

fn load_ca(crt: &Path, key: &Path) -> Result<Ca> {
    let unusable = |reason: String| TlsError::CaUnusable {
        path: crt.to_path_buf(),
        reason,
    };
    let bytes = fsutil::read(crt, "CA certificate")?;
    let chain = pem::parse_cert_chain(crt, &bytes)?;
    let der = chain.first().ok_or_else(|| TlsError::NoCertificate {
        path: crt.to_path_buf(),
    })?;
    let (_, x509) =
        x509_parser::parse_x509_certificate(der).map_err(|e| unusable(e.to_string()))?;
    if !x509.is_ca() {
        return Err(unusable(
            "not a CA certificate (basicConstraints CA:TRUE is missing)".into(),
        ));
    }
    let not_after = x509.validity().not_after.timestamp();
    if not_after <= OffsetDateTime::now_utc().unix_timestamp() {
        return Err(unusable(
            "the CA has expired; move ca.crt and ca.key away to create a new CA, \
             then trust it again on every client"
                .into(),
        ));
    }
    let key_pem =
        String::from_utf8(fsutil::read(key, "CA key")?).map_err(|_| TlsError::BadPem {
            path: key.to_path_buf(),
            detail: "not a PEM text file".into(),
        })?;
    let key_pair = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::BadKey {
        path: key.to_path_buf(),
        detail: e.to_string(),
    })?;
    if key_pair.subject_public_key_info() != x509.public_key().raw {
        return Err(TlsError::KeyMismatch {
            cert: crt.to_path_buf(),
            key: key.to_path_buf(),
        });
    }
    let issuer = Issuer::from_ca_cert_der(der, key_pair).map_err(|e| unusable(e.to_string()))?;
    let mut pem = String::from_utf8_lossy(&bytes).into_owned();
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    Ok(Ca {
        issuer,
        pem,
        not_after,
    })
}

fn create_ca(crt: &Path, key: &Path, key_type: KeyType) -> Result<Ca> {
    let key_pair = new_key(key_type)?;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "dockgate");
    params
        .distinguished_name
        .push(DnType::CommonName, "dockgate local CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial()?);
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(CA_DAYS);
    let cert = params.self_signed(&key_pair)?;
    // Key first: a crash in between leaves ca.key without ca.crt, which
    // the next run reports instead of guessing.
    fsutil::write_atomic(key, key_pair.serialize_pem().as_bytes(), KEY_MODE)?;
    fsutil::write_atomic(crt, cert.pem().as_bytes(), CERT_MODE)?;
    Ok(Ca {
        pem: cert.pem(),
        not_after: params.not_after.unix_timestamp(),
        issuer: Issuer::new(params, key_pair),
    })
}

/// What `issue_server` wrote.
pub(crate) struct Issued {
    pub not_before: i64,
    pub not_after: i64,
    pub serial: String,
    pub clamped_to_ca: bool,
}

/// Issue `server.crt` (leaf + CA chain) and `server.key` for `sans`.
pub(crate) fn issue_server(
    ca: &Ca,
    sans: &SanSet,
    key_type: KeyType,
    days: u32,
    cert_path: &Path,
    key_path: &Path,
) -> Result<Issued> {
    let key_pair = new_key(key_type)?;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "dockgate");
    if let Some(primary) = sans.primary() {
        // Go ignores the CN when SANs exist; it only helps humans.
        params.distinguished_name.push(DnType::CommonName, primary);
    }
    params.subject_alt_names = sans
        .ips
        .iter()
        .map(|ip| Ok(SanType::IpAddress(*ip)))
        .chain(
            sans.dns
                .iter()
                .map(|d| Ok(SanType::DnsName(d.as_str().try_into()?))),
        )
        .collect::<Result<Vec<_>, rcgen::Error>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = match key_type {
        KeyType::EcdsaP256 => vec![KeyUsagePurpose::DigitalSignature],
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ]
        }
    };
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let serial = random_serial()?;
    params.serial_number = Some(serial.clone());
    params.not_before = now - BACKDATE;
    let wanted_end = now + Duration::days(i64::from(days));
    // A leaf outliving its CA fails anyway; end with the CA instead.
    let ca_end = OffsetDateTime::from_unix_timestamp(ca.not_after).unwrap_or(wanted_end);
    params.not_after = wanted_end.min(ca_end);
    let cert = params.signed_by(&key_pair, &ca.issuer)?;

    fsutil::write_atomic(key_path, key_pair.serialize_pem().as_bytes(), KEY_MODE)?;
    let chain = format!("{}{}", cert.pem(), ca.pem);
    fsutil::write_atomic(cert_path, chain.as_bytes(), CERT_MODE)?;
    Ok(Issued {
        not_before: params.not_before.unix_timestamp(),
        not_after: params.not_after.unix_timestamp(),
        serial: hex(&serial.to_bytes()),
        clamped_to_ca: wanted_end > ca_end,
    })
}

fn new_key(key_type: KeyType) -> Result<KeyPair> {
    match key_type.rsa_bits() {
        None => Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?),
        Some(bits) => new_rsa_key(key_type, bits),
    }
}

/// ring signs with RSA keys but cannot make them: the `rsa` crate makes
/// the key (and nothing else); rcgen signs with it through ring.
fn new_rsa_key(key_type: KeyType, bits: usize) -> Result<KeyPair> {
    use rsa::pkcs8::EncodePrivateKey;
    let failed = |detail: String| TlsError::KeyGeneration { key_type, detail };
    let key =
        rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits).map_err(|e| failed(e.to_string()))?;
    let der = key.to_pkcs8_der().map_err(|e| failed(e.to_string()))?;
    let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes());
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(
        &pkcs8,
        &rcgen::PKCS_RSA_SHA256,
    )?)
}

/// 128 random bits, positive (top bit clear) and never zero-length.
fn random_serial() -> Result<SerialNumber> {
    let mut b = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut b)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    b[0] = (b[0] & 0x7f).max(1);
    Ok(SerialNumber::from_slice(&b))
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
