//! What a verification found: per-method results with reasons, the overall verdict, the
//! `Authentication-Results` header (RFC 8601), and a short human-readable rendering.

use std::fmt::{self, Write as _};

use mail_auth::{AuthenticatedMessage, DkimResult, Error, MessageAuthenticator};
use serde::Serialize;

use crate::dkim::algorithm_name;

/// RFC 8601 result words (`softfail` is SPF's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    Policy,
    TempError,
    PermError,
    None,
}

impl AuthResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Pass => "pass",
            AuthResult::Fail => "fail",
            AuthResult::SoftFail => "softfail",
            AuthResult::Neutral => "neutral",
            AuthResult::Policy => "policy",
            AuthResult::TempError => "temperror",
            AuthResult::PermError => "permerror",
            AuthResult::None => "none",
        }
    }
}

impl fmt::Display for AuthResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The message's overall standing, which `signet verify` turns into its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    TempError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimReport {
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub result: AuthResult,
    pub reason: String,
    pub key_type: Option<String>,
    pub key_bits: Option<u32>,
    pub header_canonicalization: String,
    pub body_canonicalization: String,
    pub signed_headers: Vec<String>,
    pub identity: Option<String>,
    pub body_length_limit: Option<u64>,
    pub signed_at: Option<u64>,
    pub expires_at: Option<u64>,
    /// The first characters of `b=`, RFC 6008's `header.b`, to tell signatures apart.
    pub signature_prefix: String,
}

/// One SPF evaluation (`check_host()`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfCheck {
    pub result: AuthResult,
    pub reason: String,
    pub domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfReport {
    pub result: AuthResult,
    pub reason: String,
    /// `mailfrom`, or `helo` when the reverse path was null or not given.
    pub identity: String,
    pub domain: String,
    pub smtp_mailfrom: Option<String>,
    pub helo: Option<SpfCheck>,
}

impl SpfReport {
    pub(crate) fn not_checked(reason: &str) -> SpfReport {
        SpfReport {
            result: AuthResult::None,
            reason: format!("not checked: {reason}"),
            identity: String::new(),
            domain: String::new(),
            smtp_mailfrom: None,
            helo: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmarcReport {
    pub result: AuthResult,
    pub reason: String,
    pub header_from: Option<String>,
    pub organizational_domain: Option<String>,
    /// Where the record was found: the From domain or its organizational domain.
    pub record_domain: Option<String>,
    pub policy: Option<String>,
    pub subdomain_policy: Option<String>,
    /// `p` or `sp`, whichever applies to the From domain.
    pub applied_policy: Option<String>,
    pub adkim: Option<String>,
    pub aspf: Option<String>,
    pub pct: Option<u8>,
    pub dkim_aligned: Option<String>,
    pub spf_aligned: Option<String>,
    /// What the receiver should do: `none`, `quarantine` or `reject`.
    pub disposition: Option<String>,
    /// The trusted ARC sealer whose passing chain overrode a DMARC failure.
    pub arc_override: Option<String>,
}

impl DmarcReport {
    pub(crate) fn without(reason: &str, result: AuthResult) -> DmarcReport {
        DmarcReport {
            result,
            reason: reason.to_string(),
            header_from: None,
            organizational_domain: None,
            record_domain: None,
            policy: None,
            subdomain_policy: None,
            applied_policy: None,
            adkim: None,
            aspf: None,
            pct: None,
            dkim_aligned: None,
            spf_aligned: None,
            disposition: None,
            arc_override: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArcHop {
    pub instance: u32,
    pub sealer: String,
    pub selector: String,
    pub algorithm: String,
    pub chain_validation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArcReport {
    pub result: AuthResult,
    pub reason: String,
    pub chain: Vec<ArcHop>,
    /// The newest sealer, when it is on the trusted list and the chain passed.
    pub trusted_sealer: Option<String>,
}

impl ArcReport {
    pub(crate) fn none(reason: &str) -> ArcReport {
        ArcReport {
            result: AuthResult::None,
            reason: reason.to_string(),
            chain: Vec::new(),
            trusted_sealer: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub authserv_id: String,
    pub verdict: Verdict,
    pub dkim: Vec<DkimReport>,
    pub spf: SpfReport,
    pub dmarc: DmarcReport,
    pub arc: ArcReport,
    /// The header this host would add, folded, without a trailing line break.
    pub authentication_results: String,
}

impl Report {
    pub(crate) fn new(
        authserv_id: &str,
        parsed: bool,
        dkim: Vec<DkimReport>,
        spf: SpfReport,
        dmarc: DmarcReport,
        arc: ArcReport,
    ) -> Report {
        let verdict = verdict(parsed, &dkim, &spf, &dmarc);
        let mut report = Report {
            authserv_id: authserv_id.to_string(),
            verdict,
            dkim,
            spf,
            dmarc,
            arc,
            authentication_results: String::new(),
        };
        report.authentication_results = report.header();
        report
    }

    /// `Authentication-Results: id; dkim=...; spf=...; dmarc=...; arc=...`.
    fn header(&self) -> String {
        let mut parts = Vec::new();
        if self.dkim.is_empty() {
            parts.push("dkim=none (no signatures)".to_string());
        }
        for signature in &self.dkim {
            let mut part = format!("dkim={} {}", signature.result, comment(&signature.reason));
            for (property, value) in [
                ("header.d", &signature.domain),
                ("header.s", &signature.selector),
                ("header.a", &signature.algorithm),
                ("header.b", &signature.signature_prefix),
            ] {
                if !value.is_empty() {
                    let _ = write!(part, " {property}={}", value_token(value));
                }
            }
            parts.push(part);
        }
        let mut spf = format!("spf={} {}", self.spf.result, comment(&self.spf.reason));
        match (&self.spf.smtp_mailfrom, self.spf.identity.as_str()) {
            (Some(sender), "mailfrom") => {
                let _ = write!(spf, " smtp.mailfrom={}", value_token(sender));
            }
            (_, "helo") => {
                let _ = write!(spf, " smtp.helo={}", value_token(&self.spf.domain));
            }
            _ => {}
        }
        parts.push(spf);
        let mut dmarc = format!("dmarc={}", self.dmarc.result);
        let mut notes = Vec::new();
        if let Some(policy) = &self.dmarc.applied_policy {
            notes.push(format!("p={policy}"));
        }
        if let Some(disposition) = &self.dmarc.disposition {
            notes.push(format!("dis={disposition}"));
        }
        if let Some(sealer) = &self.dmarc.arc_override {
            notes.push(format!("arc override by trusted sealer {sealer}"));
        }
        if notes.is_empty() {
            notes.push(self.dmarc.reason.clone());
        }
        let _ = write!(dmarc, " {}", comment(&notes.join(" ")));
        if let Some(from) = &self.dmarc.header_from {
            let _ = write!(dmarc, " header.from={}", value_token(from));
        }
        parts.push(dmarc);
        let mut arc = format!("arc={}", self.arc.result);
        if !self.arc.reason.is_empty() {
            let _ = write!(arc, " {}", comment(&self.arc.reason));
        }
        parts.push(arc);
        let mut header = format!("Authentication-Results: {};", self.authserv_id);
        let count = parts.len();
        for (index, part) in parts.into_iter().enumerate() {
            header.push_str("\r\n\t");
            header.push_str(&part);
            if index + 1 < count {
                header.push(';');
            }
        }
        header
    }

    /// A short report for a person: each signature, SPF, DMARC, ARC, then the header.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Verdict: {}", verdict_text(self.verdict));
        let _ = writeln!(out, "\nDKIM ({} signature(s))", self.dkim.len());
        for (index, s) in self.dkim.iter().enumerate() {
            let key = match (&s.key_type, s.key_bits) {
                (Some(kind), Some(bits)) => format!("{kind} {bits}-bit key"),
                (Some(kind), None) => format!("{kind} key"),
                _ => "key not read".to_string(),
            };
            let _ = writeln!(
                out,
                "  [{}] d={} s={} a={} ({key}) c={}/{}",
                index + 1,
                s.domain,
                s.selector,
                s.algorithm,
                s.header_canonicalization,
                s.body_canonicalization
            );
            let _ = writeln!(out, "      signed headers: {}", s.signed_headers.join(", "));
            if let Some(limit) = s.body_length_limit {
                let _ = writeln!(out, "      body length limit: l={limit}");
            }
            let _ = writeln!(out, "      result: {} - {}", s.result, s.reason);
        }
        let _ = writeln!(out, "\nSPF: {} - {}", self.spf.result, self.spf.reason);
        if let (Some(helo), "mailfrom") = (&self.spf.helo, self.spf.identity.as_str()) {
            let _ = writeln!(
                out,
                "  HELO {}: {} - {}",
                helo.domain, helo.result, helo.reason
            );
        }
        let _ = writeln!(
            out,
            "\nDMARC: {} - {}",
            self.dmarc.result, self.dmarc.reason
        );
        if let (Some(record), Some(policy)) = (&self.dmarc.record_domain, &self.dmarc.policy) {
            let _ = writeln!(
                out,
                "  record at _dmarc.{record}: p={policy}{} adkim={} aspf={} pct={}; applied: {}; disposition: {}",
                self.dmarc
                    .subdomain_policy
                    .as_ref()
                    .map(|sp| format!(" sp={sp}"))
                    .unwrap_or_default(),
                alignment_word(self.dmarc.adkim.as_deref()),
                alignment_word(self.dmarc.aspf.as_deref()),
                self.dmarc.pct.unwrap_or(100),
                self.dmarc.applied_policy.as_deref().unwrap_or("-"),
                self.dmarc.disposition.as_deref().unwrap_or("-"),
            );
        }
        let _ = writeln!(out, "\nARC: {} - {}", self.arc.result, self.arc.reason);
        for hop in &self.arc.chain {
            let _ = writeln!(
                out,
                "  i={} sealed by d={} s={} a={} cv={}",
                hop.instance, hop.sealer, hop.selector, hop.algorithm, hop.chain_validation
            );
        }
        let _ = writeln!(
            out,
            "\n{}",
            self.authentication_results.replace("\r\n", "\n")
        );
        out
    }
}

fn verdict(parsed: bool, dkim: &[DkimReport], spf: &SpfReport, dmarc: &DmarcReport) -> Verdict {
    if !parsed {
        return Verdict::Fail;
    }
    match dmarc.result {
        AuthResult::Pass => return Verdict::Pass,
        AuthResult::Fail | AuthResult::PermError => return Verdict::Fail,
        AuthResult::TempError => return Verdict::TempError,
        _ => {}
    }
    if dkim.iter().any(|s| s.result == AuthResult::Pass) {
        Verdict::Pass
    } else if dkim.iter().any(|s| s.result == AuthResult::TempError)
        || spf.result == AuthResult::TempError
    {
        Verdict::TempError
    } else if spf.result == AuthResult::Pass && dkim.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

fn verdict_text(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass (authenticated)",
        Verdict::Fail => "fail (not authenticated)",
        Verdict::TempError => "temperror (a DNS lookup failed; try again later)",
    }
}

fn alignment_word(mode: Option<&str>) -> &'static str {
    match mode {
        Some("s") => "strict",
        _ => "relaxed",
    }
}

/// An RFC 8601 comment: parentheses and backslashes escaped, control characters dropped.
fn comment(text: &str) -> String {
    let mut out = String::from("(");
    for ch in text.chars() {
        match ch {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push(')');
    out
}

/// A property value: a token as is, anything else as a quoted string.
fn value_token(value: &str) -> String {
    let token = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && !"()<>,;:\\\"[]?=".contains(c) || c == '@');
    if token {
        value.to_string()
    } else {
        let escaped: String = value
            .chars()
            .filter(|c| !c.is_control())
            .flat_map(|c| {
                if c == '"' || c == '\\' {
                    vec!['\\', c]
                } else {
                    vec![c]
                }
            })
            .collect();
        format!("\"{escaped}\"")
    }
}

/// ARC chain validation by mail-auth, with the trusted-sealer check.
pub(crate) async fn arc_report(
    authenticator: &MessageAuthenticator,
    message: &AuthenticatedMessage<'_>,
    trusted: &[String],
) -> ArcReport {
    let output = authenticator.verify_arc(message).await;
    let chain: Vec<ArcHop> = output
        .chain()
        .iter()
        .map(|link| ArcHop {
            instance: link.seal.header.i,
            sealer: link.seal.header.d.clone(),
            selector: link.seal.header.s.clone(),
            algorithm: algorithm_name(link.seal.header.a).to_string(),
            chain_validation: format!("{:?}", link.seal.header.cv).to_ascii_lowercase(),
        })
        .collect();
    let (result, reason) = match output.result() {
        DkimResult::Pass => (
            AuthResult::Pass,
            format!("chain of {} ARC set(s) validated", chain.len()),
        ),
        DkimResult::None => (AuthResult::None, "no ARC headers".to_string()),
        DkimResult::Fail(error) => (AuthResult::Fail, arc_reason(error)),
        DkimResult::Neutral(error) | DkimResult::PermError(error) => {
            (AuthResult::Fail, arc_reason(error))
        }
        DkimResult::TempError(error) => (AuthResult::TempError, arc_reason(error)),
    };
    let trusted_sealer = chain
        .last()
        .filter(|_| result == AuthResult::Pass)
        .map(|hop| hop.sealer.to_ascii_lowercase())
        .filter(|sealer| trusted.iter().any(|t| t.eq_ignore_ascii_case(sealer)));
    ArcReport {
        result,
        reason,
        chain,
        trusted_sealer,
    }
}

fn arc_reason(error: &Error) -> String {
    match error {
        Error::Crypto(_) => format!("an ARC signature or seal did not verify ({error})"),
        Error::Dns(_) => format!("an ARC key lookup failed ({error})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_values_are_escaped() {
        assert_eq!(comment("a (b) \\ c"), "(a \\(b\\) \\\\ c)");
        assert_eq!(value_token("example.com"), "example.com");
        assert_eq!(value_token("joe@example.com"), "joe@example.com");
        assert_eq!(value_token("a b"), "\"a b\"");
    }
}
