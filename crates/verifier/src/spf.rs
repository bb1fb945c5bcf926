//! SPF (RFC 7208) for the HELO identity and the MAIL FROM identity, through mail-auth's
//! evaluator (which enforces the ten-lookup and two-void-lookup limits).

use mail_auth::hickory_resolver::proto::rr::RData;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, SpfResult};

use crate::report::{AuthResult, SpfCheck, SpfReport};
use crate::{Envelope, spf_syntax};

pub(crate) async fn verify(
    authenticator: &MessageAuthenticator,
    envelope: &Envelope,
    host: &str,
) -> SpfReport {
    let Some(ip) = envelope.client_ip else {
        return SpfReport::not_checked("no client IP given (--client-ip)");
    };
    // An IPv4-mapped IPv6 address is the IPv4 client it stands for (RFC 7208 section 5).
    let ip = match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 @ std::net::IpAddr::V4(_) => v4,
    };
    let helo = envelope.helo.as_deref().unwrap_or_default();
    let ip_text = ip.to_string();
    let helo_check = if helo.is_empty() {
        None
    } else {
        let parameters = SpfParameters::helo(ip, helo, host);
        Some(check_identity(authenticator, helo, &ip_text, parameters).await)
    };
    let mail_from = envelope.mail_from.as_deref();
    let mail_from_check = match mail_from {
        Some(sender) if sender.contains('@') => {
            let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
            let parameters = SpfParameters::mail_from(ip, helo, host, sender);
            Some(check_identity(authenticator, domain, &ip_text, parameters).await)
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

async fn check_identity(
    authenticator: &MessageAuthenticator,
    domain: &str,
    ip: &str,
    parameters: SpfParameters<'_>,
) -> SpfCheck {
    if let Some(refused) = precheck(authenticator, domain, ip).await {
        return refused;
    }
    let output = authenticator.verify_spf(parameters).await;
    check(output.result(), output.domain(), ip, output.explanation())
}

/// The domain's own record, read first for the checks mail-auth does not make: exactly one
/// `v=spf1` record (RFC 7208 section 4.5) and its syntax (section 12). Lookup failures are left
/// to the evaluation, which reports them.
async fn precheck(
    authenticator: &MessageAuthenticator,
    domain: &str,
    ip: &str,
) -> Option<SpfCheck> {
    let name = format!("{}.", domain.trim_end_matches('.'));
    let lookup = authenticator.resolver().txt_lookup(name).await.ok()?;
    let records: Vec<String> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .filter(|text| {
            let lower = text.to_ascii_lowercase();
            lower == "v=spf1" || lower.starts_with("v=spf1 ")
        })
        .collect();
    let problem = match records.as_slice() {
        [] => return None,
        [one] => spf_syntax::check(one).err()?,
        many => format!(
            "{} publishes {} SPF records; it must publish one",
            domain,
            many.len()
        ),
    };
    Some(SpfCheck {
        result: AuthResult::PermError,
        reason: format!("{domain}'s SPF record is invalid ({problem}); {ip} was not evaluated"),
        domain: domain.to_string(),
    })
}

fn check(result: SpfResult, domain: &str, ip: &str, explanation: Option<&str>) -> SpfCheck {
    let (result, reason) = match result {
        SpfResult::Pass => (
            AuthResult::Pass,
            format!("{domain} designates {ip} as a permitted sender"),
        ),
        SpfResult::Fail => {
            let mut reason = format!("{domain} does not designate {ip} as a permitted sender");
            if let Some(explanation) = explanation.filter(|e| !e.is_empty()) {
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
            format!("{domain} makes no assertion about {ip} (?all)"),
        ),
        SpfResult::None => (
            AuthResult::None,
            format!("{domain} publishes no SPF record"),
        ),
        SpfResult::TempError => (
            AuthResult::TempError,
            format!("a DNS lookup for {domain}'s SPF record failed; try again later"),
        ),
        SpfResult::PermError => (
            AuthResult::PermError,
            format!("{domain}'s SPF record is invalid or exceeds the lookup limits"),
        ),
    };
    SpfCheck {
        result,
        reason,
        domain: domain.to_string(),
    }
}
