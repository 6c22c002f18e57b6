//! Serve-time `[tls] generate = true`: keep the server certificate
//! usable across restarts without ever changing the CA clients trust.

use std::fmt;
use std::path::Path;

use time::OffsetDateTime;

use crate::tls::generate::{
    check_options, issue_with, GenerateOptions, GenerateReport, SanSet, CA_CERT, CA_KEY,
    SERVER_CERT, SERVER_KEY,
};
use crate::tls::{fsutil, pem, Result, TlsError};

/// On serve, re-issue when the server cert expires within this many days.
pub const RENEW_WITHIN_DAYS: i64 = 30;

/// What `ensure_server_cert` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnsureOutcome {
    /// No server cert existed: generated (reusing a CA if present).
    Generated(GenerateReport),
    /// Re-issued from the same CA.
    Reissued {
        reason: ReissueReason,
        report: GenerateReport,
    },
    /// The existing cert is fine.
    Kept { not_after: i64, sans: SanSet },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReissueReason {
    /// server.crt/server.key missing, unreadable or not a pair.
    Unusable(String),
    /// server.crt was not signed by ca.crt.
    OtherIssuer,
    ExpiresSoon {
        not_after: i64,
        days_left: i64,
    },
    SansChanged {
        missing: Vec<String>,
        extra: Vec<String>,
    },
}

impl fmt::Display for ReissueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReissueReason::Unusable(e) => write!(f, "the existing server cert is unusable: {e}"),
            ReissueReason::OtherIssuer => f.write_str("the server cert was not issued by ca.crt"),
            ReissueReason::ExpiresSoon { days_left, .. } => write!(
                f,
                "the server cert expires in {days_left} days (re-issued within {RENEW_WITHIN_DAYS})"
            ),
            ReissueReason::SansChanged { missing, extra } => write!(
                f,
                "the configured SANs changed (missing: [{}], no longer wanted: [{}])",
                missing.join(", "),
                extra.join(", ")
            ),
        }
    }
}

impl fmt::Display for EnsureOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnsureOutcome::Generated(r) => {
                write!(f, "generated a server certificate for {}", r.sans)
            }
            EnsureOutcome::Reissued { reason, report } => write!(
                f,
                "re-issued the server certificate for {} because {reason}",
                report.sans
            ),
            EnsureOutcome::Kept { not_after, sans } => write!(
                f,
                "kept the server certificate for {sans} (valid until {})",
                crate::tls::verdict::rfc3339(*not_after)
            ),
        }
    }
}

/// Serve-time check for `[tls] generate = true`: generate when there is no
/// server cert, re-issue from the same CA when it expires within 30 days,
/// its SANs differ from the configured set, or it's broken; else keep it.
pub fn ensure_server_cert(opts: &GenerateOptions) -> Result<EnsureOutcome> {
    check_options(opts)?;
    let want = SanSet::from_options(opts)?;
    let crt = opts.out_dir.join(SERVER_CERT);
    let key = opts.out_dir.join(SERVER_KEY);
    if !fsutil::exists(&crt)? && !fsutil::exists(&key)? {
        return issue_with(opts, want).map(EnsureOutcome::Generated);
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    match check_existing(&opts.out_dir, &want, now) {
        Ok(not_after) => Ok(EnsureOutcome::Kept {
            not_after,
            sans: want,
        }),
        Err(reason) => {
            let dir = &opts.out_dir;
            if !fsutil::exists(&dir.join(CA_CERT))? && !fsutil::exists(&dir.join(CA_KEY))? {
                // A new CA here would silently break clients trusting the old one.
                return Err(TlsError::CaMissing {
                    dir: dir.clone(),
                    why: reason.to_string(),
                });
            }
            let report = issue_with(opts, want)?;
            Ok(EnsureOutcome::Reissued { reason, report })
        }
    }
}

/// `Ok(notAfter)` when the existing pair can stay, else why not.
fn check_existing(dir: &Path, want: &SanSet, now: i64) -> std::result::Result<i64, ReissueReason> {
    let crt = dir.join(SERVER_CERT);
    let unusable = |e: TlsError| ReissueReason::Unusable(e.to_string());
    let ck = pem::load_certified_key(&crt, &dir.join(SERVER_KEY)).map_err(unusable)?;
    let leaf = ck
        .end_entity_cert()
        .map_err(|e| ReissueReason::Unusable(e.to_string()))?;
    let (_, x509) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| ReissueReason::Unusable(e.to_string()))?;

    // Only judged when ca.crt is there: an operator may keep the CA off
    // the server, and a cert that is otherwise fine must then stay.
    if let Ok(ca_chain) = pem::load_cert_chain(&dir.join(CA_CERT)) {
        let signed_by_ca = ca_chain.first().is_some_and(|ca| {
            x509_parser::parse_x509_certificate(ca)
                .is_ok_and(|(_, ca)| x509.verify_signature(Some(ca.public_key())).is_ok())
        });
        if !signed_by_ca {
            return Err(ReissueReason::OtherIssuer);
        }
    }
    let not_after = x509.validity().not_after.timestamp();
    let days_left = (not_after - now).div_euclid(86_400);
    if days_left < RENEW_WITHIN_DAYS {
        return Err(ReissueReason::ExpiresSoon {
            not_after,
            days_left,
        });
    }
    let have = SanSet::from_cert(&x509);
    if &have != want {
        let (w, h) = (want.entries(), have.entries());
        return Err(ReissueReason::SansChanged {
            missing: w.iter().filter(|e| !h.contains(e)).cloned().collect(),
            extra: h.iter().filter(|e| !w.contains(e)).cloned().collect(),
        });
    }
    Ok(not_after)
}

#[cfg(test)]
mod tests;
