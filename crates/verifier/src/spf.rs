//! SPF (RFC 7208) for the HELO identity and the MAIL FROM identity: signet's own
//! `check_host()` ([`crate::spf_eval`]) over the verifier's resolver, so a `--records` table
//! (served on loopback) and the internet take the same path.

use std::net::IpAddr;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;

use crate::Envelope;
use crate::dns::{Kind, RecordData};
use crate::report::{AuthResult, SpfCheck, SpfReport};
use crate::spf_eval::{self, Client, Outcome, SpfDns, SpfResult};

pub(crate) async fn verify(
    resolver: &TokioResolver,
    envelope: &Envelope,
    host: &str,
    now: u64,
) -> SpfReport {
    let Some(ip) = envelope.client_ip else {
        return SpfReport::not_checked("no client IP given (--client-ip)");
    };
    // An IPv4-mapped IPv6 address is the IPv4 client it stands for (RFC 7208 section 5).
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    };
    let helo = envelope.helo.as_deref().unwrap_or_default();
    let dns = Resolver(resolver);
    let client = Client {
        ip,
        sender: "",
        helo,
        receiver: host,
        now,
    };
    let helo_check = if helo.is_empty() {
        None
    } else {
        let sender = format!("postmaster@{helo}");
        Some(
            check_identity(
                &dns,
                Client {
                    sender: &sender,
                    ..client
                },
                helo,
            )
            .await,
        )
    };
    let mail_from = envelope.mail_from.as_deref();
    let mail_from_check = match mail_from {
        Some(sender) if sender.contains('@') => {
            let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
            Some(check_identity(&dns, Client { sender, ..client }, domain).await)
        }
        Some(sender) if !sender.is_empty() => Some(SpfCheck {
            result: AuthResult::PermError,
            reason: format!("MAIL FROM `{sender}` has no domain"),
            domain: String::new(),
        }),
        _ => None,
    };
    // RFC 7208 section 2.4: with a null reverse path the HELO identity stands in for MAIL FROM.
    match (mail_from_check, helo_check) {
        (Some(main), helo) => SpfReport {
            result: main.result,
            reason: main.reason.clone(),
            identity: "mailfrom".into(),
            domain: main.domain.clone(),
            smtp_mailfrom: mail_from.map(str::to_string),
            helo,
        },
        (None, Some(helo)) => SpfReport {
            result: helo.result,
            reason: helo.reason.clone(),
            identity: "helo".into(),
            domain: helo.domain.clone(),
            smtp_mailfrom: None,
            helo: Some(helo),
        },
        (None, None) => SpfReport::not_checked("neither MAIL FROM nor HELO given"),
    }
}

async fn check_identity(dns: &Resolver<'_>, client: Client<'_>, domain: &str) -> SpfCheck {
    let outcome = spf_eval::check_host(dns, client, domain).await;
    check(&outcome, domain, client.ip)
}

fn check(outcome: &Outcome, domain: &str, ip: IpAddr) -> SpfCheck {
    let detail = &outcome.detail;
    let (result, reason) = match outcome.result {
        SpfResult::Pass => (
            AuthResult::Pass,
            format!("{domain} designates {ip} as a permitted sender"),
        ),
        SpfResult::Fail => {
            let mut reason = format!("{domain} does not designate {ip} as a permitted sender");
            if let Some(explanation) = outcome.explanation.as_deref().filter(|e| !e.is_empty()) {
                reason = format!("{reason}: {explanation}");
            }
            (AuthResult::Fail, reason)
        }
        SpfResult::SoftFail => (
            AuthResult::SoftFail,
            format!("{domain} does not designate {ip}, but asks not to reject (~all)"),
        ),
        SpfResult::Neutral => (
            AuthResult::Neutral,
            format!("{domain} makes no assertion about {ip} ({detail})"),
        ),
        SpfResult::None => (
            AuthResult::None,
            format!("{domain} publishes no SPF record"),
        ),
        SpfResult::TempError => (
            AuthResult::TempError,
            format!("{detail} while checking {domain}'s SPF record; try again later"),
        ),
        SpfResult::PermError => (
            AuthResult::PermError,
            format!("{detail}; {ip} was not evaluated against {domain}'s SPF record"),
        ),
    };
    SpfCheck {
        result,
        reason,
        domain: domain.to_string(),
    }
}

/// The verifier's hickory resolver as the evaluator's DNS. Timeouts, SERVFAIL and every other
/// failure are temporary; NXDOMAIN and NODATA are empty answers.
struct Resolver<'a>(&'a TokioResolver);

impl SpfDns for Resolver<'_> {
    async fn query(&self, name: &str, kind: Kind) -> Result<Vec<RecordData>, String> {
        // Raw labels: a domain-spec may hold any visible character (`a:foo:bar/baz.example.com`),
        // which hickory's text parsers refuse.
        let mut name = Name::from_labels(name.trim_end_matches('.').split('.').map(str::as_bytes))
            .map_err(|e| e.to_string())?;
        name.set_fqdn(true);
        let record_type = match kind {
            Kind::Txt => RecordType::TXT,
            Kind::A => RecordType::A,
            Kind::Aaaa => RecordType::AAAA,
            Kind::Mx => RecordType::MX,
            Kind::Ptr => RecordType::PTR,
            Kind::Cname => RecordType::CNAME,
        };
        let lookup = match self.0.lookup(name, record_type).await {
            Ok(lookup) => lookup,
            Err(error) if error.is_no_records_found() => return Ok(Vec::new()),
            Err(error) => return Err(error.to_string()),
        };
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(RecordData::Txt(
                    txt.txt_data.iter().map(|s| s.to_vec()).collect(),
                )),
                RData::A(a) => Some(RecordData::A(a.0)),
                RData::AAAA(a) => Some(RecordData::Aaaa(a.0)),
                RData::MX(mx) => Some(RecordData::Mx {
                    preference: mx.preference,
                    exchange: crate::dns::raw_name(&mx.exchange),
                }),
                RData::PTR(ptr) => Some(RecordData::Ptr(crate::dns::raw_name(&ptr.0))),
                _ => None,
            })
            .collect())
    }
}
