//! RFC 7208 section 12 syntax checks that mail-auth's SPF parser does not make, applied to the
//! record of the checked domain before evaluation: one record only (section 4.5), valid
//! mechanisms, domain-specs ending in a proper top label, and CIDR lengths in range.

/// `Err(why)` when a record must yield `permerror`.
pub(crate) fn check(record: &str) -> Result<(), String> {
    let mut terms = record.split([' ', '\t']).filter(|t| !t.is_empty());
    terms.next(); // v=spf1, already matched by the caller
    let mut modifiers = Vec::new();
    for term in terms {
        if let Some((name, value)) = modifier(term) {
            let name = name.to_ascii_lowercase();
            if matches!(name.as_str(), "redirect" | "exp") {
                if modifiers.contains(&name) {
                    return Err(format!("`{name}=` appears twice"));
                }
                domain_spec(value)?;
                modifiers.push(name);
            }
            continue;
        }
        mechanism(term)?;
    }
    Ok(())
}

/// `name=value` with a valid modifier name (`ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )`).
fn modifier(term: &str) -> Option<(&str, &str)> {
    let (name, value) = term.split_once('=')?;
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    valid.then_some((name, value))
}

fn mechanism(term: &str) -> Result<(), String> {
    let term = term.trim_start_matches(['+', '-', '~', '?']);
    let split = term.find([':', '/']).unwrap_or(term.len());
    let (name, rest) = term.split_at(split);
    let (argument, cidr) = match rest.strip_prefix(':') {
        Some(argument) => split_cidr(argument),
        None => (None, rest),
    };
    match name.to_ascii_lowercase().as_str() {
        "all" if argument.is_none() && cidr.is_empty() => Ok(()),
        "include" | "exists" if cidr.is_empty() => {
            domain_spec(argument.ok_or(format!("`{name}` needs a domain"))?)
        }
        "a" | "mx" => {
            if let Some(domain) = argument {
                domain_spec(domain)?;
            }
            dual_cidr(cidr)
        }
        "ptr" if cidr.is_empty() => argument.map_or(Ok(()), domain_spec),
        "ip4" => address(rest.strip_prefix(':'), 32, |a| {
            a.parse::<std::net::Ipv4Addr>().is_ok()
        }),
        "ip6" => address(rest.strip_prefix(':'), 128, |a| {
            a.parse::<std::net::Ipv6Addr>().is_ok()
        }),
        _ => Err(format!("`{term}` is not a valid mechanism")),
    }
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

fn dual_cidr(cidr: &str) -> Result<(), String> {
    if cidr.is_empty() {
        return Ok(());
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
        prefix_length(length, 32)?;
    }
    if let Some(length) = v6 {
        prefix_length(length, 128)?;
    }
    Ok(())
}

fn address(argument: Option<&str>, bits: u8, valid: impl Fn(&str) -> bool) -> Result<(), String> {
    let argument = argument.ok_or("an address is required")?;
    let (address, length) = match argument.split_once('/') {
        Some((address, length)) => (address, Some(length)),
        None => (argument, None),
    };
    if !valid(address) {
        return Err(format!("`{address}` is not a valid address"));
    }
    length.map_or(Ok(()), |length| prefix_length(length, bits))
}

/// `0`, or digits without a leading zero, at most `bits`.
fn prefix_length(text: &str, bits: u8) -> Result<(), String> {
    let well_formed = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    match text.parse::<u8>() {
        Ok(length) if well_formed && length <= bits => Ok(()),
        _ => Err(format!("`/{text}` is not a valid prefix length")),
    }
}

/// `domain-spec = macro-string domain-end`; a literal end must be `"." toplabel ["."]`.
fn domain_spec(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("an empty domain".into());
    }
    if spec.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "`{}` contains control characters",
            spec.escape_debug()
        ));
    }
    if spec.ends_with('}') {
        return Ok(()); // domain-end is a macro expansion, known only at evaluation time.
    }
    let trimmed = spec.strip_suffix('.').unwrap_or(spec);
    let Some((head, top)) = trimmed.rsplit_once('.') else {
        return Err(format!("`{spec}` has no top-level label"));
    };
    if !toplabel(top) {
        return Err(format!(
            "`{top}` is not a valid top-level label in `{spec}`"
        ));
    }
    if !spec.contains('%') {
        let labels: Vec<&str> = head.split('.').collect();
        if labels.iter().any(|l| l.is_empty() || l.len() > 63) {
            return Err(format!("`{spec}` has an empty or over-long label"));
        }
    }
    Ok(())
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

    #[test]
    fn valid_and_invalid_records() {
        for good in [
            "v=spf1 a mx -all",
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.com ~all",
            "v=spf1 a:foo.example.com/24//64 exists:%{i}.spf.example.com redirect=example.net",
            "v=spf1 a:some:thing.example.com -all",
            "v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "v=spf1 ip4:1.2.3.4/032 -all",
            "v=spf1 ip4:1.2.3.4/33",
            "v=spf1 ip6::1/129",
            "v=spf1 a:111.222.33.44",
            "v=spf1 a:abc.123",
            "v=spf1 a:foo-bar -all",
            "v=spf1 a:mail.example...com",
            "v=spf1 a:example.com:8080",
            "v=spf1 a/24/64",
            "v=spf1 -all/8",
            "v=spf1 a:",
            "v=spf1 foo:bar",
            "v=spf1 redirect=a.example.com redirect=b.example.com",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
