//! RFC 7208 section 7 macro strings: parsed once with the record (so a bad macro is a
//! `permerror` before anything is evaluated), expanded against the facts of one evaluation.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

/// A parsed `macro-string` (or, for `exp=` text, an `explain-string`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MacroString {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// `%%`, `%_`, `%-`: literal text, but a `macro-expand` for the grammar's `domain-end`.
    Escape(&'static str),
    Macro(Macro),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Macro {
    letter: Letter,
    /// An upper-case letter: the value is URL-escaped after transformation.
    url_escape: bool,
    /// Keep only this many right-hand parts.
    keep: Option<usize>,
    reverse: bool,
    /// Characters that split the value into parts; empty means `.`.
    delimiters: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Letter {
    Sender,
    LocalPart,
    SenderDomain,
    Domain,
    Ip,
    ValidatedName,
    IpVersion,
    Helo,
    ClientIp,
    Receiver,
    Timestamp,
}

impl Letter {
    fn parse(letter: char) -> Option<Letter> {
        Some(match letter.to_ascii_lowercase() {
            's' => Letter::Sender,
            'l' => Letter::LocalPart,
            'o' => Letter::SenderDomain,
            'd' => Letter::Domain,
            'i' => Letter::Ip,
            'p' => Letter::ValidatedName,
            'v' => Letter::IpVersion,
            'h' => Letter::Helo,
            'c' => Letter::ClientIp,
            'r' => Letter::Receiver,
            't' => Letter::Timestamp,
            _ => return None,
        })
    }

    fn symbol(self) -> char {
        match self {
            Letter::Sender => 's',
            Letter::LocalPart => 'l',
            Letter::SenderDomain => 'o',
            Letter::Domain => 'd',
            Letter::Ip => 'i',
            Letter::ValidatedName => 'p',
            Letter::IpVersion => 'v',
            Letter::Helo => 'h',
            Letter::ClientIp => 'c',
            Letter::Receiver => 'r',
            Letter::Timestamp => 't',
        }
    }

    /// Section 7.2: `c`, `r` and `t` describe the receiving side and belong only in `exp` text.
    fn explanation_only(self) -> bool {
        matches!(
            self,
            Letter::ClientIp | Letter::Receiver | Letter::Timestamp
        )
    }
}

/// What macros expand to during one `check_host()` evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    /// `<sender>`: `local-part@domain` (a null sender is already `postmaster@helo`).
    pub sender: &'a str,
    /// `<domain>`: the domain whose record is being evaluated.
    pub domain: &'a str,
    pub ip: IpAddr,
    pub helo: &'a str,
    /// The checking host (`%{r}`).
    pub receiver: &'a str,
    pub now: u64,
    /// `%{p}`, when the string uses it (see [`MacroString::uses_validated_name`]).
    pub validated_name: Option<&'a str>,
}

const DELIMITERS: &str = ".-+,/_=";

impl MacroString {
    /// Parses a `macro-string`; `explanation` allows spaces and `c`/`r`/`t` (`explain-string`).
    pub(crate) fn parse(text: &str, explanation: bool) -> Result<MacroString, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let piece = match chars.next() {
                        Some('%') => Piece::Escape("%"),
                        Some('_') => Piece::Escape(" "),
                        Some('-') => Piece::Escape("%20"),
                        Some('{') => Piece::Macro(parse_macro(&mut chars, text, explanation)?),
                        _ => return Err(format!("`{text}` has a `%` that starts no macro")),
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                }
                ' ' if explanation => literal.push(c),
                '!'..='~' => literal.push(c),
                _ => {
                    return Err(format!(
                        "`{}` contains a character that is not visible ASCII",
                        text.escape_debug()
                    ));
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(MacroString { pieces })
    }

    /// Whether the string ends in a `macro-expand` (which satisfies `domain-end` by itself).
    pub(crate) fn ends_with_expansion(&self) -> bool {
        matches!(self.pieces.last(), Some(Piece::Macro(_) | Piece::Escape(_)))
    }

    /// The literal text after the last expansion (all of it when there is none).
    pub(crate) fn literal_tail(&self) -> &str {
        match self.pieces.last() {
            Some(Piece::Literal(text)) => text,
            _ => "",
        }
    }

    pub(crate) fn has_macros(&self) -> bool {
        self.pieces.iter().any(|p| !matches!(p, Piece::Literal(_)))
    }

    /// `%{p}` needs DNS lookups of its own; callers look it up only when this is true.
    pub(crate) fn uses_validated_name(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Macro(m) if m.letter == Letter::ValidatedName))
    }

    pub(crate) fn expand(&self, facts: &Facts<'_>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Escape(text) => out.push_str(text),
                Piece::Macro(m) => m.expand(facts, &mut out),
            }
        }
        out
    }
}

impl fmt::Display for MacroString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => f.write_str(text)?,
                Piece::Escape(" ") => f.write_str("%_")?,
                Piece::Escape("%20") => f.write_str("%-")?,
                Piece::Escape(_) => f.write_str("%%")?,
                Piece::Macro(m) => {
                    let letter = m.letter.symbol();
                    let letter = if m.url_escape {
                        letter.to_ascii_uppercase()
                    } else {
                        letter
                    };
                    write!(f, "%{{{letter}")?;
                    if let Some(keep) = m.keep {
                        write!(f, "{keep}")?;
                    }
                    if m.reverse {
                        f.write_char('r')?;
                    }
                    write!(f, "{}}}", m.delimiters)?;
                }
            }
        }
        Ok(())
    }
}

/// After `%{`: `macro-letter transformers *delimiter "}"`.
fn parse_macro(
    chars: &mut std::str::Chars<'_>,
    text: &str,
    explanation: bool,
) -> Result<Macro, String> {
    let unterminated = || format!("`{text}` has an unterminated macro");
    let symbol = chars.next().ok_or_else(unterminated)?;
    let letter =
        Letter::parse(symbol).ok_or_else(|| format!("`%{{{symbol}` is not a macro letter"))?;
    if letter.explanation_only() && !explanation {
        return Err(format!("`%{{{symbol}}}` is allowed only in exp= text"));
    }
    let mut digits = String::new();
    let mut reverse = false;
    let mut delimiters = String::new();
    loop {
        match chars.next().ok_or_else(unterminated)? {
            '}' => break,
            c @ '0'..='9' if !reverse && delimiters.is_empty() => digits.push(c),
            'r' | 'R' if !reverse && delimiters.is_empty() => reverse = true,
            c if DELIMITERS.contains(c) => delimiters.push(c),
            c => return Err(format!("`{c}` is not allowed in a macro in `{text}`")),
        }
    }
    let keep = if digits.is_empty() {
        None
    } else {
        // Section 7.3: a zero count is an error; counts past any real label count keep all.
        match digits.parse::<usize>() {
            Ok(0) => return Err(format!("`{text}` keeps zero parts of a macro")),
            Ok(keep) => Some(keep),
            Err(_) => Some(usize::MAX),
        }
    };
    Ok(Macro {
        letter,
        url_escape: symbol.is_ascii_uppercase(),
        keep,
        reverse,
        delimiters,
    })
}

impl Macro {
    fn expand(&self, facts: &Facts<'_>, out: &mut String) {
        let value = value(self.letter, facts);
        let delimiters = if self.delimiters.is_empty() {
            "."
        } else {
            &self.delimiters
        };
        let mut parts: Vec<&str> = value.split(|c| delimiters.contains(c)).collect();
        if self.reverse {
            parts.reverse();
        }
        if let Some(keep) = self.keep {
            let skip = parts.len().saturating_sub(keep);
            parts.drain(..skip);
        }
        let joined = parts.join(".");
        if self.url_escape {
            url_escape(&joined, out);
        } else {
            out.push_str(&joined);
        }
    }
}

fn value(letter: Letter, facts: &Facts<'_>) -> String {
    let (local, sender_domain) = match facts.sender.rsplit_once('@') {
        Some((local, domain)) => (local, domain),
        None => ("", facts.sender),
    };
    match letter {
        Letter::Sender => facts.sender.to_string(),
        // Section 4.3: a sender without a local-part is "postmaster".
        Letter::LocalPart if local.is_empty() => "postmaster".into(),
        Letter::LocalPart => local.to_string(),
        Letter::SenderDomain => sender_domain.to_string(),
        Letter::Domain => facts.domain.to_string(),
        Letter::Ip => dotted_ip(facts.ip),
        Letter::ValidatedName => facts.validated_name.unwrap_or("unknown").to_string(),
        Letter::IpVersion => match facts.ip {
            IpAddr::V4(_) => "in-addr".into(),
            IpAddr::V6(_) => "ip6".into(),
        },
        Letter::Helo => facts.helo.to_string(),
        Letter::ClientIp => facts.ip.to_string(),
        Letter::Receiver => facts.receiver.to_string(),
        Letter::Timestamp => facts.now.to_string(),
    }
}

/// `%{i}`: IPv4 in dotted quad, IPv6 as 32 dot-separated nibbles (section 7.3).
pub(crate) fn dotted_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(63);
            for byte in v6.octets() {
                if !out.is_empty() {
                    out.push('.');
                }
                let _ = write!(out, "{:x}.{:x}", byte >> 4, byte & 0x0f);
            }
            out
        }
    }
}

/// RFC 3986 percent-encoding of everything outside the unreserved set.
fn url_escape(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// Section 7.3: an expanded name over 253 characters loses labels from the left until it fits.
pub(crate) fn truncate_domain(name: &str) -> &str {
    let mut name = name.trim_end_matches('.');
    while name.len() > 253 {
        match name.split_once('.') {
            Some((_, rest)) => name = rest,
            None => return name,
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The examples of RFC 7208 section 7.4.
    fn rfc_facts(ip: &str) -> Facts<'static> {
        Facts {
            sender: "strong-bad@email.example.com",
            domain: "email.example.com",
            ip: ip.parse().unwrap(),
            helo: "mx.example.org",
            receiver: "mx.example.net",
            now: 1_700_000_000,
            validated_name: Some("mx.example.org"),
        }
    }

    fn expand(text: &str, facts: &Facts<'_>) -> String {
        MacroString::parse(text, true).unwrap().expand(facts)
    }

    #[test]
    fn rfc_7208_section_7_4_examples() {
        let v4 = rfc_facts("192.0.2.3");
        for (macro_string, expected) in [
            ("%{s}", "strong-bad@email.example.com"),
            ("%{o}", "email.example.com"),
            ("%{d}", "email.example.com"),
            ("%{d4}", "email.example.com"),
            ("%{d3}", "email.example.com"),
            ("%{d2}", "example.com"),
            ("%{d1}", "com"),
            ("%{dr}", "com.example.email"),
            ("%{d2r}", "example.email"),
            ("%{l}", "strong-bad"),
            ("%{l-}", "strong.bad"),
            ("%{lr}", "strong-bad"),
            ("%{lr-}", "bad.strong"),
            ("%{l1r-}", "strong"),
            (
                "%{ir}.%{v}._spf.%{d2}",
                "3.2.0.192.in-addr._spf.example.com",
            ),
            ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
            (
                "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
                "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
            ),
            (
                "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
                "3.2.0.192.in-addr.strong.lp._spf.example.com",
            ),
            (
                "%{d2}.trusted-domains.example.net",
                "example.com.trusted-domains.example.net",
            ),
            ("%{p}", "mx.example.org"),
            ("%{c} %{r} %{t}", "192.0.2.3 mx.example.net 1700000000"),
            ("%%%_%-", "% %20"),
        ] {
            assert_eq!(expand(macro_string, &v4), expected, "{macro_string}");
        }
        let v6 = rfc_facts("2001:db8::cb01");
        assert_eq!(
            expand("%{ir}.%{v}._spf.%{d2}", &v6),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        );
        assert_eq!(expand("%{c}", &v6), "2001:db8::cb01");
    }

    #[test]
    fn upper_case_letters_are_url_escaped() {
        let mut facts = rfc_facts("192.0.2.3");
        facts.sender = "jo hn/x@example.com";
        assert_eq!(expand("%{S}", &facts), "jo%20hn%2Fx%40example.com");
        assert_eq!(expand("%{L}", &facts), "jo%20hn%2Fx");
        facts.helo = "%%";
        assert_eq!(expand("%{H}.bar", &facts), "%25%25.bar");
    }

    #[test]
    fn null_local_part_is_postmaster_and_missing_p_is_unknown() {
        let mut facts = rfc_facts("192.0.2.3");
        facts.sender = "@example.com";
        facts.validated_name = None;
        assert_eq!(expand("%{l}.%{p}", &facts), "postmaster.unknown");
    }

    #[test]
    fn bad_macro_strings_are_errors() {
        for bad in [
            "%", "%x", "%{", "%{d", "%{x}", "%{d0}", "%{dr2}", "%{d.2}", "%{d!}", "a b", "a\0b",
        ] {
            assert!(MacroString::parse(bad, false).is_err(), "{bad:?}");
        }
        for only_exp in ["%{c}", "%{r}", "%{t}", "see %{d}"] {
            assert!(MacroString::parse(only_exp, false).is_err(), "{only_exp}");
            assert!(MacroString::parse(only_exp, true).is_ok(), "{only_exp}");
        }
        assert!(MacroString::parse("%{d999999999999999999999}", false).is_ok());
    }

    #[test]
    fn domain_end_shape_is_visible_to_the_parser() {
        let spec = MacroString::parse("%{d}.example.com", false).unwrap();
        assert!(!spec.ends_with_expansion());
        assert_eq!(spec.literal_tail(), ".example.com");
        assert!(
            MacroString::parse("foo.%{d}", false)
                .unwrap()
                .ends_with_expansion()
        );
        assert!(!MacroString::parse("foo.com", false).unwrap().has_macros());
        assert!(
            MacroString::parse("%{p}.x", false)
                .unwrap()
                .uses_validated_name()
        );
    }

    #[test]
    fn long_names_lose_labels_from_the_left() {
        let name = format!("{}.{}.example.com", "a".repeat(63), "b".repeat(200));
        let truncated = truncate_domain(&name);
        assert!(truncated.len() <= 253);
        assert_eq!(truncated, format!("{}.example.com", "b".repeat(200)));
        assert_eq!(truncate_domain("example.com."), "example.com");
    }

    fn macro_string() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-z0-9.-]{1,8}",
            Just("%%".to_string()),
            Just("%_".to_string()),
            Just("%-".to_string()),
            (
                "[slodipvhSLODIPVH]",
                proptest::option::of(1usize..20),
                any::<bool>(),
                "[.+,/_=-]{0,3}"
            )
                .prop_map(|(letter, keep, reverse, delimiters)| {
                    let keep = keep.map(|k| k.to_string()).unwrap_or_default();
                    let r = if reverse { "r" } else { "" };
                    format!("%{{{letter}{keep}{r}{delimiters}}}")
                }),
        ];
        proptest::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}") {
            let _ = MacroString::parse(&text, false);
            let _ = MacroString::parse(&text, true);
        }

        #[test]
        fn display_round_trips(text in macro_string()) {
            let parsed = MacroString::parse(&text, false).unwrap();
            let shown = parsed.to_string();
            prop_assert_eq!(MacroString::parse(&shown, false).unwrap(), parsed);
        }

        #[test]
        fn kept_parts_are_a_suffix_of_the_domain(
            labels in proptest::collection::vec("[a-z0-9]{1,10}", 1..8),
            keep in 1usize..10,
        ) {
            let domain = labels.join(".");
            let mut facts = rfc_facts("192.0.2.3");
            facts.domain = &domain;
            let kept = expand(&format!("%{{d{keep}}}"), &facts);
            prop_assert!(domain.ends_with(&kept));
            prop_assert_eq!(kept.split('.').count(), keep.min(labels.len()));
            let reversed = expand("%{dr}", &facts);
            let mut back: Vec<&str> = reversed.split('.').collect();
            back.reverse();
            prop_assert_eq!(back.join("."), domain);
        }

        #[test]
        fn url_escaping_leaves_only_unreserved_characters(sender in "\\PC{0,20}@[a-z]{1,5}\\.com") {
            let mut facts = rfc_facts("192.0.2.3");
            facts.sender = &sender;
            let escaped = expand("%{S}", &facts);
            prop_assert!(escaped.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        }
    }
}
