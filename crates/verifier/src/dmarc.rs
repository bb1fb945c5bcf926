//! DMARC (RFC 7489): policy discovery with the Public Suffix List, identifier alignment,
//! `p`/`sp`/`pct`, and the override by a trusted ARC sealer.
//!
//! mail-auth 0.15 implements DMARCbis (tree walk, no `pct`), so RFC 7489 is evaluated here.

use mail_auth::hickory_resolver::proto::rr::RData;
use mail_auth::{AuthenticatedMessage, MessageAuthenticator};

use crate::psl::PublicSuffixList;
use crate::report::{ArcReport, AuthResult, DkimReport, DmarcReport, SpfReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    None,
    Quarantine,
    Reject,
}

impl Disposition {
    fn parse(text: &str) -> Option<Disposition> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Some(Disposition::None),
            "quarantine" => Some(Disposition::Quarantine),
            "reject" => Some(Disposition::Reject),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Disposition::None => "none",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
        }
    }

    /// RFC 7489 section 6.6.4: a message outside `pct` gets the next less strict policy.
    fn relaxed(self) -> Disposition {
        match self {
            Disposition::Reject => Disposition::Quarantine,
            Disposition::Quarantine | Disposition::None => Disposition::None,
        }
    }
}

/// A parsed `v=DMARC1` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub policy: Disposition,
    pub subdomain_policy: Option<Disposition>,
    pub strict_dkim: bool,
    pub strict_spf: bool,
    pub percent: u8,
}

impl Record {
    /// `None` when the text is not a usable DMARC record.
    pub(crate) fn parse(text: &str) -> Option<Record> {
        let mut tags = text
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.split_once('=').map(|(k, v)| (k.trim(), v.trim())));
        match tags.next()? {
            Some(("v", "DMARC1")) => {}
            _ => return None,
        }
        let mut policy = None;
        let mut policy_invalid = false;
        let mut has_rua = false;
        let mut record = Record {
            policy: Disposition::None,
            subdomain_policy: None,
            strict_dkim: false,
            strict_spf: false,
            percent: 100,
        };
        for (key, value) in tags.flatten() {
            match key.to_ascii_lowercase().as_str() {
                "p" => {
                    policy = Disposition::parse(value);
                    policy_invalid = policy.is_none();
                }
                "sp" => record.subdomain_policy = Disposition::parse(value),
                "adkim" => record.strict_dkim = value.eq_ignore_ascii_case("s"),
                "aspf" => record.strict_spf = value.eq_ignore_ascii_case("s"),
                "pct" => record.percent = value.parse::<u8>().map_or(100, |p| p.min(100)),
                "rua" => has_rua = true,
                _ => {}
            }
        }
        // Section 6.6.3: a missing or invalid p= with a valid rua= is read as p=none.
        record.policy = match (policy, policy_invalid || policy.is_none(), has_rua) {
            (Some(policy), _, _) => policy,
            (None, true, true) => Disposition::None,
            (None, _, _) => return None,
        };
        Some(record)
    }
}

enum Discovery {
    Found {
        domain: String,
        record: Record,
    },
    /// No `v=DMARC1` record at the name: look at the organizational domain next.
    Missing,
    /// Discovery ends without a policy (several records, or one without a valid `p=`).
    Unusable(String),
    Temporary(String),
}

pub(crate) async fn evaluate(
    authenticator: &MessageAuthenticator,
    list: &PublicSuffixList,
    message: Option<&AuthenticatedMessage<'_>>,
    raw: &[u8],
    dkim: &[DkimReport],
    spf: &SpfReport,
    arc: &ArcReport,
) -> DmarcReport {
    let Some(message) = message else {
        return DmarcReport::without("the message could not be parsed", AuthResult::PermError);
    };
    let domains = match from_domains(message) {
        Ok(domains) => domains,
        Err(reason) => return DmarcReport::without(&reason, AuthResult::PermError),
    };
    let context = Context {
        authenticator,
        list,
        raw,
        dkim,
        spf,
        arc,
    };
    let mut reports = Vec::new();
    for from in &domains {
        reports.push(evaluate_domain(&context, from.clone()).await);
    }
    strictest(reports, domains.len())
}

struct Context<'a> {
    authenticator: &'a MessageAuthenticator,
    list: &'a PublicSuffixList,
    raw: &'a [u8],
    dkim: &'a [DkimReport],
    spf: &'a SpfReport,
    arc: &'a ArcReport,
}

/// RFC 7489 section 6.6.1 leaves a From with several domains to the receiver: each domain is
/// evaluated and the strictest outcome stands.
fn strictest(mut reports: Vec<DmarcReport>, count: usize) -> DmarcReport {
    let severity = |r: &DmarcReport| match (r.result, r.disposition.as_deref()) {
        (AuthResult::Fail, Some("reject")) => 6,
        (AuthResult::Fail, Some("quarantine")) => 5,
        (AuthResult::Fail, _) => 4,
        (AuthResult::TempError, _) => 3,
        (AuthResult::PermError, _) => 2,
        (AuthResult::None, _) => 1,
        _ => 0,
    };
    reports.sort_by_key(|r| std::cmp::Reverse(severity(r)));
    let mut report = reports.swap_remove(0);
    if count > 1 {
        report.reason = format!(
            "{}; the From header names {count} domains, each was evaluated and the strictest result is shown",
            report.reason
        );
    }
    report
}

async fn evaluate_domain(context: &Context<'_>, from: String) -> DmarcReport {
    let Context {
        authenticator,
        list,
        raw,
        dkim,
        spf,
        arc,
    } = *context;
    let organizational = list.organizational_domain(&from);
    let discovery = match lookup(authenticator, &from).await {
        Discovery::Missing if organizational != from => {
            lookup(authenticator, &organizational).await
        }
        other => other,
    };
    let mut report = DmarcReport::without("", AuthResult::None);
    report.header_from = Some(from.clone());
    report.organizational_domain = Some(organizational.clone());
    let (record_domain, record) = match discovery {
        Discovery::Found { domain, record } => (domain, record),
        Discovery::Missing => {
            report.reason = missing_reason(&from, &organizational);
            return report;
        }
        Discovery::Unusable(reason) => {
            report.reason = reason;
            return report;
        }
        Discovery::Temporary(detail) => {
            report.result = AuthResult::TempError;
            report.reason = format!("DMARC record lookup failed ({detail}); try again later");
            return report;
        }
    };
    let aligned = |domain: &str, strict: bool| {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if strict {
            domain == from
        } else {
            list.organizational_domain(&domain) == organizational
        }
    };
    let dkim_aligned = dkim
        .iter()
        .filter(|s| s.result == AuthResult::Pass)
        .find(|s| aligned(&s.domain, record.strict_dkim))
        .map(|s| s.domain.to_ascii_lowercase());
    let spf_aligned = (spf.result == AuthResult::Pass && aligned(&spf.domain, record.strict_spf))
        .then(|| spf.domain.to_ascii_lowercase());
    let applied = if record_domain == from {
        record.policy
    } else {
        record.subdomain_policy.unwrap_or(record.policy)
    };
    report.record_domain = Some(record_domain.clone());
    report.policy = Some(record.policy.name().into());
    report.subdomain_policy = record.subdomain_policy.map(|p| p.name().into());
    report.applied_policy = Some(applied.name().into());
    report.adkim = Some(if record.strict_dkim { "s" } else { "r" }.into());
    report.aspf = Some(if record.strict_spf { "s" } else { "r" }.into());
    report.pct = Some(record.percent);
    report.dkim_aligned.clone_from(&dkim_aligned);
    report.spf_aligned.clone_from(&spf_aligned);
    if dkim_aligned.is_some() || spf_aligned.is_some() {
        report.result = AuthResult::Pass;
        report.disposition = Some("none".into());
        report.reason = pass_reason(dkim_aligned.as_deref(), spf_aligned.as_deref(), &from);
        return report;
    }
    report.result = AuthResult::Fail;
    let sample = sample(raw);
    let mut disposition = applied;
    let mut reason = format!(
        "no DKIM signature or SPF pass aligned with {from} (adkim={}, aspf={})",
        if record.strict_dkim { "s" } else { "r" },
        if record.strict_spf { "s" } else { "r" }
    );
    if record.percent < 100 && sample >= record.percent {
        disposition = applied.relaxed();
        reason = format!(
            "{reason}; outside pct={} (sample {sample}), so {} applies instead of {}",
            record.percent,
            disposition.name(),
            applied.name()
        );
    }
    if disposition != Disposition::None
        && arc.result == AuthResult::Pass
        && let Some(sealer) = &arc.trusted_sealer
    {
        reason =
            format!("{reason}; overridden: the ARC chain sealed by trusted sealer {sealer} passed");
        report.arc_override = Some(sealer.clone());
        disposition = Disposition::None;
    }
    report.disposition = Some(disposition.name().into());
    report.reason = reason;
    report
}

fn pass_reason(dkim: Option<&str>, spf: Option<&str>, from: &str) -> String {
    match (dkim, spf) {
        (Some(d), Some(s)) => {
            format!("DKIM d={d} and SPF {s} both pass and align with From {from}")
        }
        (Some(d), None) => format!("DKIM d={d} passes and aligns with From {from}"),
        (None, Some(s)) => format!("SPF {s} passes and aligns with From {from}"),
        (None, None) => String::new(),
    }
}

fn from_domains(message: &AuthenticatedMessage<'_>) -> Result<Vec<String>, String> {
    let mut domains: Vec<String> = message
        .from_addresses()
        .iter()
        .filter_map(|a| a.rsplit_once('@'))
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    domains.sort();
    domains.dedup();
    if domains.is_empty() {
        Err("the message has no From address with a domain".into())
    } else {
        Ok(domains)
    }
}

/// Where a record was looked for and not found: the From domain, then its organizational
/// domain when that is another one.
fn missing_reason(from: &str, organizational: &str) -> String {
    if organizational == from {
        format!("no DMARC record at _dmarc.{from}")
    } else {
        format!("no DMARC record at _dmarc.{from} or _dmarc.{organizational}")
    }
}

async fn lookup(authenticator: &MessageAuthenticator, domain: &str) -> Discovery {
    let name = format!("_dmarc.{domain}.");
    let lookup = match authenticator.resolver().txt_lookup(name).await {
        Ok(lookup) => lookup,
        Err(error) if error.is_no_records_found() => return Discovery::Missing,
        Err(error) => return Discovery::Temporary(error.to_string()),
    };
    let records: Vec<String> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .filter(|text: &String| {
            text.trim_start()
                .strip_prefix("v")
                .map(str::trim_start)
                .and_then(|rest| rest.strip_prefix('='))
                .is_some_and(|rest| rest.trim_start().starts_with("DMARC1"))
        })
        .collect();
    // Section 6.6.3: no record sends discovery to the organizational domain; several records,
    // or one without a valid p= (and no rua=), end it with no policy.
    match records.as_slice() {
        [] => Discovery::Missing,
        [one] => Record::parse(one).map_or_else(
            || {
                Discovery::Unusable(format!(
                    "the DMARC record at _dmarc.{domain} has no valid p= (and no rua=), so no policy applies"
                ))
            },
            |record| Discovery::Found {
                domain: domain.to_string(),
                record,
            },
        ),
        _ => Discovery::Unusable(format!(
            "_dmarc.{domain} publishes several DMARC records, so no policy applies"
        )),
    }
}

/// A stable 0..100 sample for `pct`, from the message's header bytes: the same message always
/// gets the same disposition, which makes the decision reproducible in a report.
fn sample(raw: &[u8]) -> u8 {
    let headers_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len());
    let digest = openssl::sha::sha256(&raw[..headers_end]);
    u8::try_from(u16::from_be_bytes([digest[0], digest[1]]) % 100).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_record_names_each_place_looked_once() {
        assert_eq!(
            missing_reason("contoso.com", "contoso.com"),
            "no DMARC record at _dmarc.contoso.com"
        );
        assert_eq!(
            missing_reason("mail.contoso.com", "contoso.com"),
            "no DMARC record at _dmarc.mail.contoso.com or _dmarc.contoso.com"
        );
    }

    #[test]
    fn records_parse() {
        let record = Record::parse("v=DMARC1; p=reject; sp=none; adkim=s; pct=50").unwrap();
        assert_eq!(record.policy, Disposition::Reject);
        assert_eq!(record.subdomain_policy, Some(Disposition::None));
        assert!(record.strict_dkim);
        assert!(!record.strict_spf);
        assert_eq!(record.percent, 50);
        assert!(Record::parse("v=spf1 -all").is_none());
        assert!(Record::parse("p=reject; v=DMARC1").is_none());
        assert!(Record::parse("v=DMARC1; p=bogus").is_none());
        assert_eq!(
            Record::parse("v=DMARC1; p=bogus; rua=mailto:a@b.c")
                .unwrap()
                .policy,
            Disposition::None
        );
    }
}
