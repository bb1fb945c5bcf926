//! Inbound mail authentication: DKIM, SPF, DMARC and ARC results for one message, as an
//! `Authentication-Results` header (RFC 8601) and a [`Report`] explaining each verdict; plus
//! [`analyze`], which explains the authentication headers a message already carries.
//!
//! The DKIM and ARC cryptography come from `mail-auth`; SPF is this crate's own RFC 7208
//! `check_host()`. On top, it adds what signet's policy needs: RFC 8301 refusals (no
//! `rsa-sha1`, no RSA under 1024 bits), `l=` signatures never vouching for appended content,
//! DMARC with the Public Suffix List and `pct`, trusted ARC sealers, and plain reasons for
//! every result. DNS goes through a resolver built
//! from [`Resolution`]: upstream servers, the system's, or a [`dns::DnsAnswers`] table served on
//! loopback (tests and `signet verify --records`).
//!
//! ```no_run
//! # async fn run(raw: &[u8]) -> Result<(), signet_verifier::Error> {
//! use signet_verifier::{Envelope, Resolution, Verifier, VerifierConfig};
//! let verifier = Verifier::new(VerifierConfig::new("mx.example.net", Resolution::System)).await?;
//! let report = verifier.verify(raw, &Envelope::default(), None).await;
//! println!("{}", report.authentication_results);
//! # Ok(()) }
//! ```

pub mod analyze;
pub mod dns;
pub mod psl;
pub mod report;
pub mod seal;

mod as_of;
mod dkim;
mod dmarc;
mod spf;
mod spf_eval;
mod spf_macro;
mod spf_syntax;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, MessageAuthenticator};

pub use crate::analyze::analyze;
pub use crate::dns::{DnsAnswers, LoopbackDns, RecordTable};
pub use crate::psl::PublicSuffixList;
pub use crate::report::{
    ArcReport, AuthResult, DkimReport, DmarcReport, Report, SpfCheck, SpfReport, Verdict,
};
pub use crate::seal::SealingKey;

/// Errors setting up a verifier or reading its inputs. Verification itself never fails: every
/// problem with a message becomes a result with a reason in the [`Report`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("records file, line {line}: {reason}")]
    Records { line: usize, reason: String },
    #[error("cannot start the loopback DNS responder: {0}")]
    Loopback(#[source] std::io::Error),
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
    #[error("`{0}` is neither a Unix time nor an RFC 3339 date")]
    Time(String),
    #[error("unusable sealing key: {0}")]
    SealingKey(String),
    #[error("cannot seal: {0}")]
    Seal(String),
}

/// Where DNS answers come from.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// The system's resolver (`/etc/resolv.conf`).
    System,
    /// These upstream servers (UDP, TCP on truncation).
    Nameservers(Vec<SocketAddr>),
    /// A table, served on a loopback port for the verifier's own resolver.
    Answers(Arc<dyn DnsAnswers>),
}

/// How a verifier is built.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The `authserv-id` naming this host in `Authentication-Results`.
    pub authserv_id: String,
    pub resolution: Resolution,
    /// Per-query timeout; a lookup that exceeds it is a `temperror`.
    pub timeout: Duration,
    /// Domains whose ARC seal (`cv=pass`, `arc=pass`) may override a DMARC failure.
    pub trusted_arc_sealers: Vec<String>,
    pub public_suffixes: Arc<PublicSuffixList>,
}

impl VerifierConfig {
    pub fn new(authserv_id: impl Into<String>, resolution: Resolution) -> VerifierConfig {
        VerifierConfig {
            authserv_id: authserv_id.into(),
            resolution,
            timeout: Duration::from_secs(5),
            trusted_arc_sealers: Vec::new(),
            public_suffixes: Arc::new(PublicSuffixList::built_in()),
        }
    }
}

/// The SMTP facts around a message.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub client_ip: Option<IpAddr>,
    pub helo: Option<String>,
    /// The reverse path; `Some("")` is the null sender `<>`.
    pub mail_from: Option<String>,
}

/// A message verifier with its resolver (and, for tables, its loopback server).
#[derive(Debug)]
pub struct Verifier {
    authenticator: Authenticator,
    config: VerifierConfig,
    keys: dkim::KeyMemo,
    _loopback: Option<LoopbackDns>,
}

/// `MessageAuthenticator` has no `Debug`; this wrapper gives the verifier one.
#[derive(Clone)]
struct Authenticator(MessageAuthenticator);

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageAuthenticator")
    }
}

impl Verifier {
    /// Builds the resolver; with [`Resolution::Answers`] this starts the loopback responder, so
    /// it must run inside a Tokio runtime.
    pub async fn new(config: VerifierConfig) -> Result<Verifier, Error> {
        let mut options = ResolverOpts::default();
        options.timeout = config.timeout;
        options.attempts = 1;
        options.ndots = 0;
        options.edns0 = true;
        let (resolver_config, loopback) = match &config.resolution {
            Resolution::System => {
                let (system, system_options) = hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| Error::Resolver(e.to_string()))?;
                options.edns0 = system_options.edns0 || options.edns0;
                (system, None)
            }
            Resolution::Nameservers(servers) => (servers_config(servers), None),
            Resolution::Answers(answers) => {
                let loopback = LoopbackDns::start(Arc::clone(answers))
                    .await
                    .map_err(Error::Loopback)?;
                (servers_config(&[loopback.address()]), Some(loopback))
            }
        };
        let authenticator = MessageAuthenticator::new(resolver_config, options)
            .map_err(|e| Error::Resolver(e.to_string()))?;
        Ok(Verifier {
            authenticator: Authenticator(authenticator),
            config,
            keys: dkim::KeyMemo::default(),
            _loopback: loopback,
        })
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Only the DKIM signatures of `raw`, as of `at`: for callers that need no SPF or DMARC (and
    /// the benchmark). An unparsable message has no signatures to report.
    pub async fn verify_dkim(&self, raw: &[u8], at: Option<u64>) -> Vec<DkimReport> {
        let now = at.unwrap_or_else(unix_now);
        match AuthenticatedMessage::parse(raw) {
            Some(message) => {
                dkim::verify(
                    &self.authenticator.0,
                    &self.keys,
                    &message,
                    now,
                    at.is_some(),
                )
                .await
            }
            None => Vec::new(),
        }
    }

    /// Verifies `raw` as received in `envelope`, as of `at` (Unix seconds; `None` is now).
    pub async fn verify(&self, raw: &[u8], envelope: &Envelope, at: Option<u64>) -> Report {
        let now = at.unwrap_or_else(unix_now);
        let authenticator = &self.authenticator.0;
        let message = AuthenticatedMessage::parse(raw);
        let dkim = match &message {
            Some(message) => {
                dkim::verify(authenticator, &self.keys, message, now, at.is_some()).await
            }
            None => Vec::new(),
        };
        let spf = spf::verify(
            authenticator.resolver(),
            envelope,
            &self.config.authserv_id,
            now,
        )
        .await;
        let arc = match &message {
            Some(message) => {
                report::arc_report(authenticator, message, &self.config.trusted_arc_sealers).await
            }
            None => ArcReport::none("the message could not be parsed"),
        };
        let dmarc = dmarc::evaluate(
            authenticator,
            &self.config.public_suffixes,
            message.as_ref(),
            raw,
            &dkim,
            &spf,
            &arc,
        )
        .await;
        Report::new(
            &self.config.authserv_id,
            message.is_some(),
            dkim,
            spf,
            dmarc,
            arc,
        )
    }
}

fn servers_config(servers: &[SocketAddr]) -> ResolverConfig {
    let servers = servers
        .iter()
        .map(|address| {
            let mut server = NameServerConfig::udp_and_tcp(address.ip());
            for connection in &mut server.connections {
                connection.port = address.port();
            }
            server
        })
        .collect();
    ResolverConfig::from_name_servers(servers)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Line ends as on the SMTP wire: a bare LF becomes CRLF (files on disk usually have bare LFs).
pub fn to_crlf(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let bare = raw
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'));
    if !bare {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    for (i, &byte) in raw.iter().enumerate() {
        if byte == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(byte);
    }
    std::borrow::Cow::Owned(out)
}

/// Reads `--at`: Unix seconds, or an RFC 3339 date.
pub fn parse_time(text: &str) -> Result<u64, Error> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|date| u64::try_from(date.unix_timestamp()).ok())
        .ok_or_else(|| Error::Time(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_unix_or_rfc3339() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_time("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000);
        assert!(parse_time("yesterday").is_err());
    }
}
