//! RFC 7208 records, parsed whole before anything is evaluated: section 4.6 says a syntax
//! error anywhere in the record is a `permerror`, even after a mechanism that would match. The
//! grammar is section 12's: mechanisms, modifiers (`redirect=`, `exp=`, and unknown ones, which
//! are checked and ignored), domain-specs ending in a proper top label or a macro, and CIDR
//! lengths in range.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::spf_macro::MacroString;

/// One `v=spf1` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub directives: Vec<Directive>,
    pub redirect: Option<MacroString>,
    pub explanation: Option<MacroString>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    pub qualifier: Qualifier,
    pub mechanism: Mechanism,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mechanism {
    All,
    Include(MacroString),
    A {
        domain: Option<MacroString>,
        cidr: DualCidr,
    },
    Mx {
        domain: Option<MacroString>,
        cidr: DualCidr,
    },
    Ptr(Option<MacroString>),
    Ip4 {
        network: Ipv4Addr,
        length: u8,
    },
    Ip6 {
        network: Ipv6Addr,
        length: u8,
    },
    Exists(MacroString),
}

/// The prefix lengths an `a` or `mx` mechanism compares addresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DualCidr {
    pub v4: u8,
    pub v6: u8,
}

/// Section 4.5: a record is `v=spf1` (any case) alone or followed by a space.
pub(crate) fn is_spf(text: &str) -> bool {
    text.get(..6)
        .is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
        && matches!(text.as_bytes().get(6), None | Some(b' '))
}

/// Parses a record that [`is_spf`]; `Err(why)` means `permerror`.
pub(crate) fn parse(record: &str) -> Result<Record, String> {
    let mut terms = record.split([' ', '\t']).filter(|t| !t.is_empty());
    terms.next(); // v=spf1, already matched by the caller
    let mut parsed = Record {
        directives: Vec::new(),
        redirect: None,
        explanation: None,
    };
    for term in terms {
        let Some((name, value)) = modifier(term)? else {
            parsed.directives.push(directive(term)?);
            continue;
        };
        let slot = match name.to_ascii_lowercase().as_str() {
            "redirect" => &mut parsed.redirect,
            "exp" => &mut parsed.explanation,
            // Section 6: unknown modifiers are ignored, but must still be valid macro-strings.
            _ => {
                MacroString::parse(value, false)?;
                continue;
            }
        };
        if slot.is_some() {
            return Err(format!("`{name}=` appears twice"));
        }
        *slot = Some(domain_spec(value)?);
    }
    Ok(parsed)
}

/// `name=value` when `=` comes before any `:` or `/` (section 4.6.1); `None` for a mechanism.
fn modifier(term: &str) -> Result<Option<(&str, &str)>, String> {
    let Some(at) = term.find(['=', ':', '/']) else {
        return Ok(None);
    };
    if term.as_bytes()[at] != b'=' {
        return Ok(None);
    }
    let (name, value) = (&term[..at], &term[at + 1..]);
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid {
        Ok(Some((name, value)))
    } else {
        Err(format!("`{name}` is not a valid modifier name"))
    }
}

fn directive(term: &str) -> Result<Directive, String> {
    let (qualifier, rest) = match term.as_bytes().first() {
        Some(b'+') => (Qualifier::Pass, &term[1..]),
        Some(b'-') => (Qualifier::Fail, &term[1..]),
        Some(b'~') => (Qualifier::SoftFail, &term[1..]),
        Some(b'?') => (Qualifier::Neutral, &term[1..]),
        _ => (Qualifier::Pass, term),
    };
    Ok(Directive {
        qualifier,
        mechanism: mechanism(rest)?,
    })
}

fn mechanism(term: &str) -> Result<Mechanism, String> {
    let split = term.find([':', '/']).unwrap_or(term.len());
    let (name, rest) = term.split_at(split);
    let (argument, cidr) = match rest.strip_prefix(':') {
        Some(argument) => split_cidr(argument),
        None => (None, rest),
    };
    let domain = |argument: Option<&str>| argument.map(domain_spec).transpose();
    let required = |argument: Option<&str>| {
        domain_spec(argument.ok_or_else(|| format!("`{name}` needs a domain"))?)
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "all" if argument.is_none() && cidr.is_empty() => Mechanism::All,
        "include" if cidr.is_empty() => Mechanism::Include(required(argument)?),
        "exists" if cidr.is_empty() => Mechanism::Exists(required(argument)?),
        "a" => Mechanism::A {
            domain: domain(argument)?,
            cidr: dual_cidr(cidr)?,
        },
        "mx" => Mechanism::Mx {
            domain: domain(argument)?,
            cidr: dual_cidr(cidr)?,
        },
        "ptr" if cidr.is_empty() => Mechanism::Ptr(domain(argument)?),
        "ip4" => {
            let (network, length) = address(rest.strip_prefix(':'), 32)?;
            Mechanism::Ip4 { network, length }
        }
        "ip6" => {
            let (network, length) = address(rest.strip_prefix(':'), 128)?;
            Mechanism::Ip6 { network, length }
        }
        _ => return Err(format!("`{term}` is not a valid mechanism")),
    })
}

/// Splits `domain/24//64` into the domain and its CIDR suffix: only a trailing `/digits` and
/// `//digits` are a suffix; any other `/` belongs to the domain-spec (a macro-literal).
fn split_cidr(argument: &str) -> (Option<&str>, &str) {
    let strip = |text: &str, marker: &str| {
        let at = text.rfind(marker)?;
        let digits = &text[at + marker.len()..];
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(at)
    };
    let mut end = argument.len();
    if let Some(at) = strip(argument, "//") {
        end = at;
    }
    if let Some(at) = strip(&argument[..end], "/").filter(|&at| !argument[..at].ends_with('/')) {
        end = at;
    }
    (Some(&argument[..end]), &argument[end..])
}

fn dual_cidr(cidr: &str) -> Result<DualCidr, String> {
    let mut lengths = DualCidr { v4: 32, v6: 128 };
    if cidr.is_empty() {
        return Ok(lengths);
    }
    let (v4, v6) = if let Some(v6) = cidr.strip_prefix("//") {
        (None, Some(v6))
    } else {
        let rest = cidr.strip_prefix('/').unwrap_or(cidr);
        match rest.split_once("//") {
            Some((v4, v6)) => (Some(v4), Some(v6)),
            None => (Some(rest), None),
        }
    };
    if let Some(length) = v4 {
        lengths.v4 = prefix_length(length, 32)?;
    }
    if let Some(length) = v6 {
        lengths.v6 = prefix_length(length, 128)?;
    }
    Ok(lengths)
}

fn address<T: std::str::FromStr>(argument: Option<&str>, bits: u8) -> Result<(T, u8), String> {
    let argument = argument.ok_or("an address is required")?;
    let (address, length) = match argument.split_once('/') {
        Some((address, length)) => (address, prefix_length(length, bits)?),
        None => (argument, bits),
    };
    let address = address
        .parse()
        .map_err(|_| format!("`{address}` is not a valid address"))?;
    Ok((address, length))
}

/// `0`, or digits without a leading zero, at most `bits`.
fn prefix_length(text: &str, bits: u8) -> Result<u8, String> {
    let well_formed = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    match text.parse::<u8>() {
        Ok(length) if well_formed && length <= bits => Ok(length),
        _ => Err(format!("`/{text}` is not a valid prefix length")),
    }
}

/// `domain-spec = macro-string domain-end`; a literal end must be `"." toplabel ["."]`.
fn domain_spec(spec: &str) -> Result<MacroString, String> {
    if spec.is_empty() {
        return Err("an empty domain".into());
    }
    let parsed = MacroString::parse(spec, false)?;
    if parsed.ends_with_expansion() {
        return Ok(parsed); // domain-end is a macro expansion, known only at evaluation time.
    }
    let tail = parsed.literal_tail();
    let trimmed = tail.strip_suffix('.').unwrap_or(tail);
    let Some((head, top)) = trimmed.rsplit_once('.') else {
        return Err(format!("`{spec}` has no top-level label"));
    };
    if !toplabel(top) {
        return Err(format!(
            "`{top}` is not a valid top-level label in `{spec}`"
        ));
    }
    // A literal name that can never be queried is a publishing mistake worth reporting; with
    // macros, the expansion decides (and an unusable result is then a non-match).
    if !parsed.has_macros() && head.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(format!("`{spec}` has an empty or over-long label"));
    }
    Ok(parsed)
}

/// `toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )`
fn toplabel(label: &str) -> bool {
    let bytes = label.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    let alphanumeric_or_dash = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    if !alphanumeric_or_dash || label.len() > 63 {
        return false;
    }
    if label.contains('-') {
        first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()
    } else {
        bytes.iter().any(u8::is_ascii_alphabetic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(record: &str) -> Result<(), String> {
        parse(record).map(drop)
    }

    #[test]
    fn valid_and_invalid_records() {
        for good in [
            "v=spf1 a mx -all",
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.com ~all",
            "v=spf1 a:foo.example.com/24//64 exists:%{i}.spf.example.com redirect=example.net",
            "v=spf1 a:some:thing.example.com -all",
            "v=spf1 a:foo:bar/baz.example.com",
            "v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all",
            "v=spf1 ip4:1.2.3.4 redirect=t2.example.com",
            "v=spf1 a:foo.example.xn--zckzah -all",
            "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all exp=explain.%{d}",
            "v=spf1",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "v=spf1 ip4:1.2.3.4/032 -all",
            "v=spf1 ip4:1.2.3.4/33",
            "v=spf1 ip4:1.2.3.4//32",
            "v=spf1 ip4:1.2.3",
            "v=spf1 ip4:1.2.3.4:8080",
            "v=spf1 ip4",
            "v=spf1 ip6::1/129",
            "v=spf1 ip6::CAFE::BABE",
            "v=spf1 ip6:::1.1.1.1//33",
            "v=spf1 a:111.222.33.44",
            "v=spf1 a:abc.123",
            "v=spf1 a:foo-bar -all",
            "v=spf1 a:example.-com",
            "v=spf1 a:museum.",
            "v=spf1 a:mail.example...com",
            "v=spf1 a:example.com:8080",
            "v=spf1 a:foo.example.com\0",
            "v=spf1 a/24/64",
            "v=spf1 a//129",
            "v=spf1 -all/8",
            "v=spf1 -all.",
            "v=spf1 -all:foobar",
            "v=spf1 a:",
            "v=spf1 include",
            "v=spf1 include:ip5.example.com/24",
            "v=spf1 exists",
            "v=spf1 exists:mail.example.com/24",
            "v=spf1 foo:bar",
            "v=spf1 ip4:1.2.3.4 -all moo",
            "v=spf1 moo.cow/far_out=man:dog/cat",
            "v=spf1 moo.cow:far_out=man:dog/cat",
            "v=spf1 redirect:t2.example.com",
            "v=spf1 redirect=a.example.com redirect=b.example.com",
            "v=spf1 exp=a.example.com exp=b.example.com",
            "v=spf1 a:%{c}.example.com",
            "v=spf1 a:%{d0}.example.com",
            "v=spf1 unknown=%{x}",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_parse_into_terms() {
        let record = parse("v=spf1 -a:mail.example.com/24//64 ?mx ~ip6:2001:db8::/32 ip4:192.0.2.1 include:x.example.com ptr -all redirect=r.example.com exp=e.%{d}").unwrap();
        let mechanisms: Vec<(Qualifier, &Mechanism)> = record
            .directives
            .iter()
            .map(|d| (d.qualifier, &d.mechanism))
            .collect();
        let spec = |text: &str| MacroString::parse(text, false).unwrap();
        assert_eq!(
            mechanisms,
            [
                (
                    Qualifier::Fail,
                    &Mechanism::A {
                        domain: Some(spec("mail.example.com")),
                        cidr: DualCidr { v4: 24, v6: 64 }
                    }
                ),
                (
                    Qualifier::Neutral,
                    &Mechanism::Mx {
                        domain: None,
                        cidr: DualCidr { v4: 32, v6: 128 }
                    }
                ),
                (
                    Qualifier::SoftFail,
                    &Mechanism::Ip6 {
                        network: "2001:db8::".parse().unwrap(),
                        length: 32
                    }
                ),
                (
                    Qualifier::Pass,
                    &Mechanism::Ip4 {
                        network: "192.0.2.1".parse().unwrap(),
                        length: 32
                    }
                ),
                (Qualifier::Pass, &Mechanism::Include(spec("x.example.com"))),
                (Qualifier::Pass, &Mechanism::Ptr(None)),
                (Qualifier::Fail, &Mechanism::All),
            ]
        );
        assert_eq!(record.redirect, Some(spec("r.example.com")));
        assert_eq!(record.explanation, Some(spec("e.%{d}")));
    }

    #[test]
    fn version_must_stand_alone() {
        assert!(is_spf("v=spf1"));
        assert!(is_spf("V=SpF1 -all"));
        assert!(!is_spf("v=spf10"));
        assert!(!is_spf("v=spf1mx"));
        assert!(!is_spf("v=spf"));
        assert!(!is_spf("spf2.0/pra"));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "v=spf1 [ -~\\t]{0,60}") {
            let _ = parse(&text);
        }

        #[test]
        fn ip4_prefixes_in_range_parse_and_others_do_not(address: std::net::Ipv4Addr, length in 0u8..=40) {
            let parsed = parse(&format!("v=spf1 ip4:{address}/{length}"));
            prop_assert_eq!(parsed.is_ok(), length <= 32);
            if let Ok(record) = parsed {
                prop_assert_eq!(&record.directives[0].mechanism, &Mechanism::Ip4 { network: address, length });
            }
        }

        #[test]
        fn dual_cidr_lengths_are_read_back(v4 in 0u8..=32, v6 in 0u8..=128) {
            let record = parse(&format!("v=spf1 mx:mail.example.com/{v4}//{v6}")).unwrap();
            let Mechanism::Mx { cidr, .. } = &record.directives[0].mechanism else {
                panic!("expected mx");
            };
            prop_assert_eq!(*cidr, DualCidr { v4, v6 });
        }
    }
}
