//! The Public Suffix List, for DMARC's organizational domain (RFC 7489 section 3.2).
//!
//! A copy ships inside the binary (`data/public_suffix_list.dat`, from Debian's `publicsuffix`
//! package, MPL-2.0); an operator can load a newer file with [`PublicSuffixList::parse`].

use std::collections::HashSet;

const BUILT_IN: &str = include_str!("../data/public_suffix_list.dat");

/// Suffix rules: plain (`com`), wildcard (`*.ck`) and exception (`!www.ck`).
#[derive(Debug, Clone)]
pub struct PublicSuffixList {
    rules: HashSet<String>,
    wildcards: HashSet<String>,
    exceptions: HashSet<String>,
}

impl PublicSuffixList {
    /// The list compiled into signet.
    pub fn built_in() -> PublicSuffixList {
        PublicSuffixList::parse(BUILT_IN)
    }

    /// Reads the list's text format (both ICANN and private sections are used, as DMARC
    /// implementations commonly do).
    pub fn parse(text: &str) -> PublicSuffixList {
        let mut list = PublicSuffixList {
            rules: HashSet::new(),
            wildcards: HashSet::new(),
            exceptions: HashSet::new(),
        };
        for line in text.lines() {
            let Some(rule) = line.split_whitespace().next() else {
                continue;
            };
            if rule.starts_with("//") {
                continue;
            }
            // Rules are written in Unicode; mail domains arrive as A-labels (punycode).
            let rule = if rule.is_ascii() {
                rule.to_lowercase()
            } else {
                let (prefix, name) = match rule.strip_prefix('!') {
                    Some(rest) => ("!", rest),
                    None => rule
                        .strip_prefix("*.")
                        .map_or(("", rule), |rest| ("*.", rest)),
                };
                match idna::domain_to_ascii(name) {
                    Ok(ascii) => format!("{prefix}{ascii}"),
                    Err(_) => continue,
                }
            };
            if let Some(exception) = rule.strip_prefix('!') {
                list.exceptions.insert(exception.to_string());
            } else if let Some(parent) = rule.strip_prefix("*.") {
                list.wildcards.insert(parent.to_string());
            } else {
                list.rules.insert(rule);
            }
        }
        list
    }

    pub fn len(&self) -> usize {
        self.rules.len() + self.wildcards.len() + self.exceptions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The public suffix of `domain` (lowercase, no trailing dot), by the list's algorithm:
    /// the longest matching rule, exceptions first, `*` as the default rule.
    pub fn public_suffix<'d>(&self, domain: &'d str) -> &'d str {
        let labels: Vec<usize> = std::iter::once(0)
            .chain(domain.match_indices('.').map(|(at, _)| at + 1))
            .collect();
        // Walk from the longest candidate (the whole name) to the shortest.
        for &start in &labels {
            let candidate = &domain[start..];
            if self.exceptions.contains(candidate) {
                // An exception rule's suffix is the rule minus its first label.
                return candidate
                    .split_once('.')
                    .map_or(candidate, |(_, rest)| rest);
            }
            if self.rules.contains(candidate) {
                return candidate;
            }
            if let Some((_, parent)) = candidate.split_once('.')
                && self.wildcards.contains(parent)
            {
                return candidate;
            }
        }
        labels.last().map_or(domain, |&start| &domain[start..])
    }

    /// The organizational domain: the public suffix plus one label, or the name itself when it
    /// is a public suffix (RFC 7489 section 3.2).
    pub fn organizational_domain(&self, domain: &str) -> String {
        let domain = domain.trim_end_matches('.').to_lowercase();
        let suffix = self.public_suffix(&domain);
        if suffix.len() >= domain.len() {
            return domain;
        }
        let prefix = &domain[..domain.len() - suffix.len() - 1];
        let label = prefix.rsplit('.').next().unwrap_or(prefix);
        format!("{label}.{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_domains() {
        let list = PublicSuffixList::built_in();
        for (domain, expected) in [
            ("mail.example.com", "example.com"),
            ("example.com", "example.com"),
            ("a.b.example.co.uk", "example.co.uk"),
            ("com", "com"),
            ("www.city.kobe.jp", "city.kobe.jp"),
            ("a.b.c.kobe.jp", "b.c.kobe.jp"),
            ("Sub.Example.ORG.", "example.org"),
        ] {
            assert_eq!(list.organizational_domain(domain), expected, "{domain}");
        }
    }
}
