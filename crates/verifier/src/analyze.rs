//! The header analyzer: explains the authentication headers a message already carries
//! (`Authentication-Results`, `ARC-*`, `DKIM-Signature`, `Received`, `Received-SPF`), in
//! header order, without any DNS. Pure: bytes in, an [`Analysis`] out.

use std::fmt::Write as _;

use serde::Serialize;

/// Every header the analyzer explains, top (newest) first, and the relay hops oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub headers: Vec<ExplainedHeader>,
    pub hops: Vec<Hop>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainedHeader {
    /// 1-based position among all the message's header fields.
    pub position: usize,
    pub name: String,
    /// The value, unfolded.
    pub value: String,
    pub summary: String,
    pub items: Vec<Item>,
}

/// One tag or result inside a header, with what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub key: String,
    pub value: String,
    pub meaning: String,
}

/// One `Received` header: a relay step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub from: Option<String>,
    pub by: Option<String>,
    pub with: Option<String>,
    pub date: Option<String>,
    pub timestamp: Option<i64>,
    /// Seconds since the previous (older) hop, when both dates could be read.
    pub delay_seconds: Option<i64>,
}

/// A parsed `Authentication-Results` (or `ARC-Authentication-Results`) value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthResults {
    pub instance: Option<String>,
    pub authserv_id: String,
    pub results: Vec<MethodResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MethodResult {
    pub method: String,
    pub version: Option<String>,
    pub result: String,
    pub reason: Option<String>,
    pub comment: Option<String>,
    /// `(ptype, property, value)`, e.g. `("header", "d", "example.com")`.
    pub properties: Vec<(String, String, String)>,
}

/// Explains `raw`'s authentication headers. Never fails: unreadable parts are reported as such.
pub fn analyze(raw: &[u8]) -> Analysis {
    let fields = header_fields(raw);
    let mut headers = Vec::new();
    let mut received = Vec::new();
    for (index, (name, value)) in fields.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        let explained = match lower.as_str() {
            "dkim-signature" => Some(explain_signature(value, "DKIM signature")),
            "arc-message-signature" => Some(explain_signature(value, "ARC message signature")),
            "arc-seal" => Some(explain_signature(value, "ARC seal")),
            "authentication-results" | "arc-authentication-results" => {
                Some(explain_auth_results(value, lower.starts_with("arc")))
            }
            "received-spf" => Some(explain_received_spf(value)),
            "received" => {
                received.push(parse_hop(value));
                Some((format!("relay step {}", received.len()), Vec::new()))
            }
            _ => None,
        };
        if let Some((summary, items)) = explained {
            headers.push(ExplainedHeader {
                position: index + 1,
                name: name.clone(),
                value: value.clone(),
                summary,
                items,
            });
        }
    }
    received.reverse();
    let mut previous: Option<i64> = None;
    for hop in &mut received {
        hop.delay_seconds = match (previous, hop.timestamp) {
            (Some(before), Some(now)) => Some(now - before),
            _ => None,
        };
        if hop.timestamp.is_some() {
            previous = hop.timestamp;
        }
    }
    Analysis {
        headers,
        hops: received,
    }
}

impl Analysis {
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.headers.is_empty() {
            out.push_str("No authentication or Received headers found.\n");
        }
        for header in self
            .headers
            .iter()
            .filter(|h| !h.name.eq_ignore_ascii_case("received"))
        {
            let _ = writeln!(
                out,
                "#{} {}: {}",
                header.position, header.name, header.summary
            );
            for item in &header.items {
                let value = shorten(&item.value, 60);
                let _ = writeln!(out, "    {}={}  -- {}", item.key, value, item.meaning);
            }
            out.push('\n');
        }
        if !self.hops.is_empty() {
            let _ = writeln!(out, "Relay hops (oldest first):");
            for (index, hop) in self.hops.iter().enumerate() {
                let delay = hop
                    .delay_seconds
                    .map_or_else(|| "-".to_string(), |d| format!("{d}s"));
                let _ = writeln!(
                    out,
                    "  {}. from {} by {} with {} at {} (delay {delay})",
                    index + 1,
                    hop.from.as_deref().unwrap_or("?"),
                    hop.by.as_deref().unwrap_or("?"),
                    hop.with.as_deref().unwrap_or("?"),
                    hop.date.as_deref().unwrap_or("?"),
                );
            }
        }
        out
    }
}

fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        text.to_string()
    } else {
        let head: String = text.chars().take(limit).collect();
        format!("{head}...")
    }
}

/// The header block's fields, unfolded, stopping at the first empty line.
pub fn header_fields(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
}

fn tags(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A signature's tags with the folding whitespace taken out of their values, as a verifier
/// reads them (RFC 6376 section 3.2): a `bh=` or `b=` folded over lines is one base64 string.
fn signature_tags(value: &str) -> Vec<(String, String)> {
    tags(value)
        .into_iter()
        .map(|(key, value)| (key, value.split_whitespace().collect()))
        .collect()
}

fn explain_signature(value: &str, kind: &str) -> (String, Vec<Item>) {
    let tags = signature_tags(value);
    let tag = |name: &str| {
        tags.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let summary = format!(
        "{kind} by d={} with selector s={}",
        tag("d").unwrap_or("?"),
        tag("s").unwrap_or("?")
    );
    let items = tags
        .iter()
        .map(|(key, value)| Item {
            key: key.clone(),
            value: value.clone(),
            meaning: if key == "i" && kind.starts_with("ARC") {
                "ARC instance: which forwarding hop added this set (1 = the first)".into()
            } else {
                signature_tag_meaning(key, value)
            },
        })
        .collect();
    (summary, items)
}

fn signature_tag_meaning(key: &str, value: &str) -> String {
    match key {
        "v" => "version of the signature format".into(),
        "a" => match value {
            "rsa-sha1" => "algorithm: RSA with SHA-1, refused by RFC 8301".into(),
            "rsa-sha256" => "algorithm: RSA with SHA-256".into(),
            "ed25519-sha256" => "algorithm: Ed25519 with SHA-256 (RFC 8463)".into(),
            _ => "signing algorithm".into(),
        },
        "b" => "the signature itself (base64)".into(),
        "bh" => "hash of the canonicalized body; a changed body no longer matches".into(),
        "c" => "canonicalization header/body: how much whitespace change survives (simple: none, relaxed: some)".into(),
        "d" => "the signing domain (SDID) that takes responsibility for the message".into(),
        "s" => format!("selector: the key is published at {value}._domainkey.<d>"),
        "h" => "header fields covered by the signature, in signing order".into(),
        "i" => "agent or user identity (AUID) on whose behalf the domain signed".into(),
        "l" => "body length limit: only this many body bytes are signed; content after them is not protected".into(),
        "q" => "how to fetch the key (dns/txt)".into(),
        "t" => format!("signed at {}", describe_time(value)),
        "x" => format!("signature expires at {}", describe_time(value)),
        "z" => "copies of the signed header fields as they were when signed (diagnostics)".into(),
        "cv" => match value {
            "none" => "chain validation: no earlier ARC sets (this is the first)".into(),
            "pass" => "chain validation: the earlier ARC sets verified at this hop".into(),
            "fail" => "chain validation: the chain was already broken at this hop".into(),
            _ => "chain validation status".into(),
        },
        "r" => "asks for failure reports (RFC 6651)".into(),
        _ => "unrecognized tag".into(),
    }
}

fn describe_time(value: &str) -> String {
    value
        .parse::<i64>()
        .ok()
        .and_then(|seconds| time::OffsetDateTime::from_unix_timestamp(seconds).ok())
        .and_then(|date| {
            date.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or_else(
            || format!("{value} (unreadable)"),
            |date| format!("{value} ({date})"),
        )
}

fn explain_auth_results(value: &str, arc: bool) -> (String, Vec<Item>) {
    let Some(parsed) = parse_auth_results(value, arc) else {
        return ("unreadable Authentication-Results".into(), Vec::new());
    };
    let mut items = Vec::new();
    if let Some(instance) = &parsed.instance {
        items.push(Item {
            key: "i".into(),
            value: instance.clone(),
            meaning: "ARC instance: which hop (1 = first) recorded these results".into(),
        });
    }
    for result in &parsed.results {
        let mut value = result.result.clone();
        for (ptype, property, pvalue) in &result.properties {
            let _ = write!(value, " {ptype}.{property}={pvalue}");
        }
        let mut meaning = format!(
            "{}: {}",
            method_meaning(&result.method),
            result_meaning(&result.method, &result.result)
        );
        if let Some(comment) = &result.comment {
            let _ = write!(meaning, " ({comment})");
        }
        items.push(Item {
            key: result.method.clone(),
            value,
            meaning,
        });
    }
    let summary = format!(
        "results recorded by {} ({} method(s))",
        parsed.authserv_id,
        parsed.results.len()
    );
    (summary, items)
}

fn method_meaning(method: &str) -> &'static str {
    match method.to_ascii_lowercase().as_str() {
        "dkim" => "DKIM signature check",
        "spf" => "SPF check of the sending IP against the envelope domain",
        "dmarc" => "DMARC: does an aligned DKIM or SPF pass back the From domain",
        "arc" => "ARC chain of custody through forwarders",
        "iprev" => "reverse DNS of the client IP",
        "auth" => "SMTP AUTH login",
        "dkim-adsp" => "DKIM ADSP (historic)",
        "bimi" => "brand indicator (BIMI)",
        "compauth" => "Microsoft composite authentication",
        "none" => "no authentication was performed",
        _ => "other method",
    }
}

fn result_meaning(method: &str, result: &str) -> &'static str {
    match (
        method.to_ascii_lowercase().as_str(),
        result.to_ascii_lowercase().as_str(),
    ) {
        (_, "pass") => "passed",
        ("spf", "fail") => "the IP is not allowed to send for the domain",
        (_, "fail") => "failed: the check ran and did not verify",
        (_, "softfail") => "weak failure: the domain suggests the IP is probably not allowed",
        (_, "neutral") => "no assertion, or the signature could not be processed",
        (_, "policy") => "verified but not accepted by local policy",
        (_, "temperror") => "temporary error (usually DNS); a retry may succeed",
        (_, "permerror") => "permanent error: a record or signature is malformed",
        (_, "none") => "nothing to check (no record or no signature)",
        _ => "unrecognized result",
    }
}

fn explain_received_spf(value: &str) -> (String, Vec<Item>) {
    let result = value.split_whitespace().next().unwrap_or("").to_string();
    let mut items = vec![Item {
        key: "result".into(),
        value: result.clone(),
        meaning: result_meaning("spf", &result).into(),
    }];
    let rest = value.split_once(')').map_or(value, |(_, rest)| rest);
    for (key, tag_value) in tags(rest) {
        let meaning = match key.to_ascii_lowercase().as_str() {
            "client-ip" => "the connecting IP that was checked",
            "envelope-from" => "the MAIL FROM address",
            "helo" => "the name the client gave in HELO/EHLO",
            "receiver" => "the host that performed the check",
            "identity" => "which identity was checked (mailfrom or helo)",
            "mechanism" => "the SPF mechanism that matched",
            "problem" => "what went wrong",
            _ => "additional detail",
        };
        items.push(Item {
            key: key.trim().to_string(),
            value: tag_value.trim_matches('"').to_string(),
            meaning: meaning.into(),
        });
    }
    (format!("SPF result {result}"), items)
}

fn parse_hop(value: &str) -> Hop {
    let (clauses, date) = match value.rsplit_once(';') {
        Some((clauses, date)) => (clauses, Some(date.trim().to_string())),
        None => (value, None),
    };
    let words: Vec<&str> = clauses.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| w.eq_ignore_ascii_case(key))
            .and_then(|i| words.get(i + 1))
            .map(|w| (*w).to_string())
    };
    let timestamp = date.as_deref().and_then(parse_date);
    Hop {
        from: after("from"),
        by: after("by"),
        with: after("with"),
        date,
        timestamp,
        delay_seconds: None,
    }
}

/// An RFC 5322 date, with trailing comments such as `(UTC)` dropped.
fn parse_date(text: &str) -> Option<i64> {
    let cleaned = text.split('(').next().unwrap_or(text).trim();
    time::OffsetDateTime::parse(cleaned, &time::format_description::well_known::Rfc2822)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Comment(String),
    Punct(char),
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                let mut depth = 1;
                let mut comment = String::new();
                loop {
                    let c = chars.next()?;
                    match c {
                        '\\' => comment.push(chars.next()?),
                        '(' => {
                            depth += 1;
                            comment.push(c);
                        }
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            comment.push(c);
                        }
                        c => comment.push(c),
                    }
                }
                tokens.push(Token::Comment(comment));
            }
            '"' => {
                chars.next();
                let mut quoted = String::new();
                loop {
                    match chars.next()? {
                        '\\' => quoted.push(chars.next()?),
                        '"' => break,
                        c => quoted.push(c),
                    }
                }
                tokens.push(Token::Quoted(quoted));
            }
            ';' | '=' | '/' => {
                chars.next();
                tokens.push(Token::Punct(c));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "();=/\"".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                if word.is_empty() {
                    // A stray ')' stops no word: take it as punctuation, or the loop never ends
                    // (found by fuzzing).
                    chars.next();
                    tokens.push(Token::Punct(c));
                    continue;
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Some(tokens)
}

/// Parses an `Authentication-Results` value (RFC 8601 section 2.2); `arc` expects the leading
/// `i=N;` of an `ARC-Authentication-Results`. `None` when it does not follow the grammar.
pub fn parse_auth_results(value: &str, arc: bool) -> Option<AuthResults> {
    let tokens = tokenize(value)?;
    let mut groups: Vec<Vec<Token>> = vec![Vec::new()];
    for token in tokens {
        if token == Token::Punct(';') {
            groups.push(Vec::new());
        } else if let Some(last) = groups.last_mut() {
            last.push(token);
        }
    }
    let mut groups = groups.into_iter();
    let mut instance = None;
    if arc {
        let first = groups.next()?;
        let words: Vec<&Token> = first
            .iter()
            .filter(|t| !matches!(t, Token::Comment(_)))
            .collect();
        match words.as_slice() {
            [Token::Word(i), Token::Punct('='), Token::Word(n)] if i.eq_ignore_ascii_case("i") => {
                instance = Some(n.clone());
            }
            _ => return None,
        }
    }
    let head = groups.next()?;
    let mut head_words = head.iter().filter_map(|t| match t {
        Token::Word(w) | Token::Quoted(w) => Some(w.clone()),
        _ => None,
    });
    let authserv_id = head_words.next()?;
    let mut results = Vec::new();
    for group in groups {
        if group.iter().all(|t| matches!(t, Token::Comment(_))) {
            continue; // An empty clause, e.g. after a trailing `;`.
        }
        let result = parse_method(&group)?;
        if result.method.eq_ignore_ascii_case("none") {
            continue;
        }
        results.push(result);
    }
    Some(AuthResults {
        instance,
        authserv_id,
        results,
    })
}

fn parse_method(group: &[Token]) -> Option<MethodResult> {
    let mut comment = None;
    let mut words = Vec::new();
    for token in group {
        match token {
            Token::Comment(text) => {
                if comment.is_none() {
                    comment = Some(text.clone());
                }
            }
            other => words.push(other.clone()),
        }
    }
    let mut at = 0;
    let word = |index: usize| match words.get(index) {
        Some(Token::Word(w)) => Some(w.clone()),
        _ => None,
    };
    let method = word(at)?;
    at += 1;
    let mut version = None;
    if words.get(at) == Some(&Token::Punct('/')) {
        version = Some(word(at + 1)?);
        at += 2;
    }
    if method.eq_ignore_ascii_case("none") && words.len() == 1 {
        return Some(MethodResult {
            method,
            version,
            result: "none".into(),
            reason: None,
            comment,
            properties: Vec::new(),
        });
    }
    if words.get(at) != Some(&Token::Punct('=')) {
        return None;
    }
    let result = word(at + 1)?;
    at += 2;
    let mut reason = None;
    let mut properties = Vec::new();
    while at < words.len() {
        let name = word(at)?;
        if words.get(at + 1) != Some(&Token::Punct('=')) {
            return None;
        }
        let value = match words.get(at + 2) {
            Some(Token::Word(w) | Token::Quoted(w)) => w.clone(),
            _ => return None,
        };
        at += 3;
        if name.eq_ignore_ascii_case("reason") {
            reason = Some(value);
        } else {
            // ptype and property names are case-insensitive (RFC 8601 section 2.2).
            let (ptype, property) = name.split_once('.')?;
            properties.push((
                ptype.to_ascii_lowercase(),
                property.to_ascii_lowercase(),
                value,
            ));
        }
    }
    Some(MethodResult {
        method,
        version,
        result,
        reason,
        comment,
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stray_closing_parenthesis_ends_tokenizing() {
        // Found by fuzzing (fuzz/fuzz_targets/verifier_analyze.rs): this looped forever.
        assert!(tokenize("mx.example; dkim=pass ) x").is_some());
        let message = b"Authentication-Results: mx.example; dkim=pass)\r\n\r\nbody\r\n";
        let _ = analyze(message).render();
    }

    #[test]
    fn auth_results_parse_with_comments_and_properties() {
        let parsed = parse_auth_results(
            "mx.example.org; dkim=pass (good (nested) sig) header.d=example.com header.s=\"sel 1\"; spf=fail reason=\"bad ip\" smtp.mailfrom=joe@example.com",
            false,
        )
        .unwrap();
        assert_eq!(parsed.authserv_id, "mx.example.org");
        assert_eq!(parsed.results.len(), 2);
        assert_eq!(
            parsed.results[0].comment.as_deref(),
            Some("good (nested) sig")
        );
        assert_eq!(
            parsed.results[0].properties[1],
            ("header".into(), "s".into(), "sel 1".into())
        );
        assert_eq!(parsed.results[1].reason.as_deref(), Some("bad ip"));
        assert!(parse_auth_results("x; dkim", false).is_none());
    }

    #[test]
    fn hops_are_ordered_oldest_first_with_delays() {
        let message = b"Received: from b.example by c.example with ESMTP; Tue, 14 Nov 2023 22:14:20 +0000\r\n\
Received: from a.example by b.example with SMTP; Tue, 14 Nov 2023 22:13:20 +0000 (UTC)\r\n\
DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel;\r\n\tbh=ab\r\n\tc; h=from :\r\n to; b=x yz\r\n\
From: a@example.com\r\n\r\nbody\r\n";
        let analysis = analyze(message);
        assert_eq!(analysis.hops.len(), 2);
        assert_eq!(analysis.hops[0].by.as_deref(), Some("b.example"));
        assert_eq!(analysis.hops[1].delay_seconds, Some(60));
        let dkim = analysis
            .headers
            .iter()
            .find(|h| h.name == "DKIM-Signature")
            .unwrap();
        assert_eq!(
            dkim.summary,
            "DKIM signature by d=example.com with selector s=sel"
        );
        assert!(
            dkim.items
                .iter()
                .any(|i| i.key == "bh" && i.meaning.contains("body"))
        );
        let value = |key: &str| {
            dkim.items
                .iter()
                .find(|i| i.key == key)
                .map(|i| i.value.as_str())
        };
        // Folded values are shown as a verifier reads them: without the folding whitespace.
        assert_eq!(value("bh"), Some("abc"));
        assert_eq!(value("h"), Some("from:to"));
        assert_eq!(value("b"), Some("xyz"));
    }
}
