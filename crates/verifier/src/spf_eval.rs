//! RFC 7208 `check_host()`: the evaluation of parsed records, with DNS behind [`SpfDns`] so the
//! rules (lookup limits, void lookups, include and redirect semantics, macro targets) are tested
//! against tables without a resolver.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::dns::{Kind, RecordData};
use crate::spf_macro::{Facts, MacroString, truncate_domain};
use crate::spf_syntax::{self, DualCidr, Mechanism, Qualifier, Record};

/// Section 4.6.4: at most ten terms that query DNS per evaluation, includes included.
const LOOKUP_LIMIT: u32 = 10;
/// Section 4.6.4: more than two lookups answering NXDOMAIN or no records is a `permerror`.
const VOID_LIMIT: u32 = 2;
/// Section 4.6.4: names an `mx` may resolve (more is a `permerror`) and PTR names a `ptr` or
/// `%{p}` may validate (the rest are ignored).
const NAME_LIMIT: usize = 10;

/// DNS as the evaluator needs it: the records of one type at a name (CNAMEs followed), an empty
/// list for NXDOMAIN or NODATA, `Err` for anything temporary (timeouts, SERVFAIL).
pub(crate) trait SpfDns: Sync {
    fn query(
        &self,
        name: &str,
        kind: Kind,
    ) -> impl Future<Output = Result<Vec<RecordData>, String>> + Send;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpfResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

/// The result of `check_host()` and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub result: SpfResult,
    /// What decided it: the matching term, or the error.
    pub detail: String,
    /// The expanded `exp=` text, for `fail` results whose record has one.
    pub explanation: Option<String>,
}

impl Outcome {
    fn new(result: SpfResult, detail: impl Into<String>) -> Outcome {
        Outcome {
            result,
            detail: detail.into(),
            explanation: None,
        }
    }
}

/// The SMTP facts one evaluation is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client<'a> {
    /// The client address, IPv4-mapped IPv6 already turned into IPv4.
    pub ip: IpAddr,
    pub sender: &'a str,
    pub helo: &'a str,
    pub receiver: &'a str,
    pub now: u64,
}

/// Why evaluation stopped before a result was reached.
enum Stop {
    Temporary(String),
    Permanent(String),
}

impl Stop {
    fn into_outcome(self) -> Outcome {
        match self {
            Stop::Temporary(why) => Outcome::new(SpfResult::TempError, why),
            Stop::Permanent(why) => Outcome::new(SpfResult::PermError, why),
        }
    }
}

/// `check_host(ip, domain, sender)`.
pub(crate) async fn check_host<D: SpfDns>(dns: &D, client: Client<'_>, domain: &str) -> Outcome {
    let mut evaluation = Evaluation {
        dns,
        client,
        lookups: 0,
        voids: 0,
    };
    evaluation.check_host(domain.to_string()).await
}

struct Evaluation<'a, D> {
    dns: &'a D,
    client: Client<'a>,
    lookups: u32,
    voids: u32,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<D: SpfDns> Evaluation<'_, D> {
    /// Boxed because include and redirect recurse.
    fn check_host(&mut self, domain: String) -> Boxed<'_, Outcome> {
        Box::pin(async move {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            // Section 4.3: a malformed or single-label domain has no SPF record.
            if !queryable(&domain) || !domain.contains('.') {
                return Outcome::new(SpfResult::None, format!("`{domain}` is not a domain name"));
            }
            let record = match self.record(&domain).await {
                Ok(Some(record)) => record,
                Ok(None) => {
                    return Outcome::new(
                        SpfResult::None,
                        format!("{domain} publishes no SPF record"),
                    );
                }
                Err(stop) => return stop.into_outcome(),
            };
            match self.evaluate(&record, &domain).await {
                Ok(outcome) => outcome,
                Err(stop) => stop.into_outcome(),
            }
        })
    }

    /// The one `v=spf1` TXT record at `domain` (section 4.5), parsed.
    async fn record(&mut self, domain: &str) -> Result<Option<Record>, Stop> {
        let answers =
            self.dns.query(domain, Kind::Txt).await.map_err(|e| {
                Stop::Temporary(format!("the TXT lookup for {domain} failed ({e})"))
            })?;
        if answers.is_empty() {
            self.void(domain)?;
        }
        let records: Vec<String> = answers
            .iter()
            .filter_map(|data| match data {
                RecordData::Txt(strings) => Some(String::from_utf8_lossy(&strings.concat()).into()),
                _ => None,
            })
            .filter(|text: &String| spf_syntax::is_spf(text))
            .collect();
        match records.as_slice() {
            [] => Ok(None),
            [one] => spf_syntax::parse(one).map(Some).map_err(|why| {
                Stop::Permanent(format!("{domain}'s SPF record is invalid ({why})"))
            }),
            many => Err(Stop::Permanent(format!(
                "{domain} publishes {} SPF records; it must publish one",
                many.len()
            ))),
        }
    }

    async fn evaluate(&mut self, record: &Record, domain: &str) -> Result<Outcome, Stop> {
        for directive in &record.directives {
            if !self.matches(&directive.mechanism, domain).await? {
                continue;
            }
            let result = match directive.qualifier {
                Qualifier::Pass => SpfResult::Pass,
                Qualifier::Fail => SpfResult::Fail,
                Qualifier::SoftFail => SpfResult::SoftFail,
                Qualifier::Neutral => SpfResult::Neutral,
            };
            let mut outcome = Outcome::new(result, format!("a term of {domain}'s record matches"));
            if result == SpfResult::Fail
                && let Some(explanation) = &record.explanation
            {
                outcome.explanation = self.explanation(explanation, domain).await;
            }
            return Ok(outcome);
        }
        // Section 6.1: redirect applies when no mechanism matched (an `all` always does).
        let Some(redirect) = &record.redirect else {
            return Ok(Outcome::new(
                SpfResult::Neutral,
                format!("{domain}: no term matches"),
            ));
        };
        self.count_lookup()?;
        let target = self.expand_domain(redirect, domain).await;
        let outcome = self.check_host(target.clone()).await;
        if outcome.result == SpfResult::None {
            return Err(Stop::Permanent(format!(
                "{domain} redirects to {target}, which has no SPF record"
            )));
        }
        Ok(outcome)
    }

    async fn matches(&mut self, mechanism: &Mechanism, domain: &str) -> Result<bool, Stop> {
        let ip = self.client.ip;
        match mechanism {
            Mechanism::All => Ok(true),
            Mechanism::Ip4 { network, length } => Ok(match ip {
                IpAddr::V4(v4) => in_network(
                    u128::from(v4.to_bits()),
                    u128::from(network.to_bits()),
                    *length,
                    32,
                ),
                IpAddr::V6(_) => false,
            }),
            Mechanism::Ip6 { network, length } => Ok(match ip {
                IpAddr::V6(v6) => in_network(v6.to_bits(), network.to_bits(), *length, 128),
                IpAddr::V4(_) => false,
            }),
            Mechanism::Include(spec) => {
                self.count_lookup()?;
                let target = self.expand_domain(spec, domain).await;
                let outcome = self.check_host(target.clone()).await;
                match outcome.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(Stop::Temporary(outcome.detail)),
                    SpfResult::PermError => Err(Stop::Permanent(outcome.detail)),
                    SpfResult::None => Err(Stop::Permanent(format!(
                        "{domain} includes {target}, which has no SPF record"
                    ))),
                }
            }
            Mechanism::A { domain: spec, cidr } => {
                self.count_lookup()?;
                let target = self.target(spec.as_ref(), domain).await;
                if !queryable(&target) {
                    return Ok(false);
                }
                let addresses = self.addresses(&target).await?;
                if addresses.is_empty() {
                    self.void(&target)?;
                }
                Ok(addresses.iter().any(|a| matches_cidr(ip, *a, *cidr)))
            }
            Mechanism::Mx { domain: spec, cidr } => {
                self.count_lookup()?;
                let target = self.target(spec.as_ref(), domain).await;
                self.mx_matches(&target, *cidr).await
            }
            Mechanism::Ptr(spec) => {
                self.count_lookup()?;
                let target = self.target(spec.as_ref(), domain).await;
                let names = self.validated_names(true).await?;
                Ok(names.iter().any(|name| within(name, &target)))
            }
            Mechanism::Exists(spec) => {
                self.count_lookup()?;
                let target = self.expand_domain(spec, domain).await;
                if !queryable(&target) {
                    return Ok(false);
                }
                // Section 5.7: always an A lookup, whatever the client's address family.
                let answers = self.dns.query(&target, Kind::A).await.map_err(|e| {
                    Stop::Temporary(format!("the A lookup for {target} failed ({e})"))
                })?;
                let found = answers.iter().any(|d| matches!(d, RecordData::A(_)));
                if !found {
                    self.void(&target)?;
                }
                Ok(found)
            }
        }
    }

    async fn mx_matches(&mut self, target: &str, cidr: DualCidr) -> Result<bool, Stop> {
        if !queryable(target) {
            return Ok(false);
        }
        let answers = self
            .dns
            .query(target, Kind::Mx)
            .await
            .map_err(|e| Stop::Temporary(format!("the MX lookup for {target} failed ({e})")))?;
        let mut exchanges: Vec<(u16, &str)> = answers
            .iter()
            .filter_map(|d| match d {
                RecordData::Mx {
                    preference,
                    exchange,
                } => Some((*preference, exchange.trim_end_matches('.'))),
                _ => None,
            })
            .collect();
        if exchanges.is_empty() {
            self.void(target)?;
            return Ok(false);
        }
        exchanges.sort_by_key(|(preference, _)| *preference);
        // Section 5.4: a null MX (RFC 7505) names no host, and MX names are never A-looked-up
        // as a fallback. Section 4.6.4: at most ten address lookups per mx; the limit is on
        // the lookups made, so a match among the first ten hosts still counts.
        let hosts = exchanges.iter().map(|(_, e)| *e).filter(|e| !e.is_empty());
        for (queried, exchange) in hosts.enumerate() {
            if queried == NAME_LIMIT {
                return Err(Stop::Permanent(format!(
                    "{target} has more than {NAME_LIMIT} MX hosts to look up"
                )));
            }
            let addresses = self.addresses(exchange).await?;
            if addresses
                .iter()
                .any(|a| matches_cidr(self.client.ip, *a, cidr))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The A or AAAA records (by the client's family) of `name`.
    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, Stop> {
        if !queryable(name) {
            return Ok(Vec::new());
        }
        let kind = match self.client.ip {
            IpAddr::V4(_) => Kind::A,
            IpAddr::V6(_) => Kind::Aaaa,
        };
        let answers =
            self.dns.query(name, kind).await.map_err(|e| {
                Stop::Temporary(format!("the address lookup for {name} failed ({e})"))
            })?;
        Ok(answers
            .iter()
            .filter_map(|d| match d {
                RecordData::A(a) => Some(IpAddr::V4(*a)),
                RecordData::Aaaa(a) => Some(IpAddr::V6(*a)),
                _ => None,
            })
            .collect())
    }

    /// Section 5.5: the client's PTR names whose addresses include the client. DNS errors mean
    /// no names; `counted` makes an empty PTR answer a void lookup (the `ptr` mechanism).
    async fn validated_names(&mut self, counted: bool) -> Result<Vec<String>, Stop> {
        let reverse = reverse_name(self.client.ip);
        let Ok(answers) = self.dns.query(&reverse, Kind::Ptr).await else {
            return Ok(Vec::new());
        };
        let names: Vec<String> = answers
            .iter()
            .filter_map(|d| match d {
                RecordData::Ptr(name) => Some(name.trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        if names.is_empty() && counted {
            self.void(&reverse)?;
        }
        let mut validated = Vec::new();
        for name in names.into_iter().take(NAME_LIMIT) {
            if let Ok(addresses) = self.addresses(&name).await
                && addresses.contains(&self.client.ip)
            {
                validated.push(name);
            }
        }
        Ok(validated)
    }

    /// The `exp=` text (section 6.2); any problem means no explanation, never a different result.
    async fn explanation(&mut self, spec: &MacroString, domain: &str) -> Option<String> {
        let target = self.expand_domain(spec, domain).await;
        if !queryable(&target) {
            return None;
        }
        let answers = self.dns.query(&target, Kind::Txt).await.ok()?;
        let [RecordData::Txt(strings)] = answers.as_slice() else {
            return None;
        };
        let text = String::from_utf8(strings.concat()).ok()?;
        let text = MacroString::parse(&text, true).ok()?;
        let validated = if text.uses_validated_name() {
            self.validated_name(domain).await
        } else {
            None
        };
        Some(text.expand(&self.facts(domain, validated.as_deref())))
    }

    async fn target(&mut self, spec: Option<&MacroString>, domain: &str) -> String {
        match spec {
            Some(spec) => self.expand_domain(spec, domain).await,
            None => domain.to_string(),
        }
    }

    async fn expand_domain(&mut self, spec: &MacroString, domain: &str) -> String {
        let validated = if spec.uses_validated_name() {
            self.validated_name(domain).await
        } else {
            None
        };
        let expanded = spec.expand(&self.facts(domain, validated.as_deref()));
        truncate_domain(&expanded).to_ascii_lowercase()
    }

    /// `%{p}` (section 7.3): a validated name equal to or under `domain` if there is one, else
    /// any validated name. Its lookups are not terms, so they count toward no limit.
    async fn validated_name(&mut self, domain: &str) -> Option<String> {
        let names = self.validated_names(false).await.ok()?;
        names
            .iter()
            .find(|name| within(name, domain))
            .or(names.first())
            .cloned()
    }

    fn facts<'f>(&'f self, domain: &'f str, validated_name: Option<&'f str>) -> Facts<'f> {
        Facts {
            sender: self.client.sender,
            domain,
            ip: self.client.ip,
            helo: self.client.helo,
            receiver: self.client.receiver,
            now: self.client.now,
            validated_name,
        }
    }

    fn count_lookup(&mut self) -> Result<(), Stop> {
        self.lookups += 1;
        if self.lookups > LOOKUP_LIMIT {
            return Err(Stop::Permanent(format!(
                "more than {LOOKUP_LIMIT} terms query DNS (RFC 7208 section 4.6.4)"
            )));
        }
        Ok(())
    }

    fn void(&mut self, name: &str) -> Result<(), Stop> {
        self.voids += 1;
        if self.voids > VOID_LIMIT {
            return Err(Stop::Permanent(format!(
                "more than {VOID_LIMIT} lookups found nothing (the last at {name})"
            )));
        }
        Ok(())
    }
}

/// Whether `name` can be put in a DNS query: labels of 1 to 63 bytes, 253 bytes in all. An
/// expanded target that cannot is a non-match rather than an error (the suite accepts either;
/// section 4.3 treats such names as non-existent).
fn queryable(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| (1..=63).contains(&l.len()))
}

/// `name` is `domain` or a name under it.
fn within(name: &str, domain: &str) -> bool {
    let name = name.trim_end_matches('.');
    let domain = domain.trim_end_matches('.');
    name.eq_ignore_ascii_case(domain)
        || name.len() > domain.len()
            && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain)
            && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
}

fn matches_cidr(client: IpAddr, address: IpAddr, cidr: DualCidr) -> bool {
    match (client, address) {
        (IpAddr::V4(client), IpAddr::V4(address)) => in_network(
            u128::from(client.to_bits()),
            u128::from(address.to_bits()),
            cidr.v4,
            32,
        ),
        (IpAddr::V6(client), IpAddr::V6(address)) => {
            in_network(client.to_bits(), address.to_bits(), cidr.v6, 128)
        }
        _ => false,
    }
}

/// Whether the top `length` of `bits` bits of `address` and `network` agree.
fn in_network(address: u128, network: u128, length: u8, bits: u8) -> bool {
    let ignored = u32::from(bits.saturating_sub(length));
    address.checked_shr(ignored).unwrap_or(0) == network.checked_shr(ignored).unwrap_or(0)
}

fn reverse_name(ip: IpAddr) -> String {
    let dotted = crate::spf_macro::dotted_ip(ip);
    let mut parts: Vec<&str> = dotted.split('.').collect();
    parts.reverse();
    let suffix = match ip {
        IpAddr::V4(_) => "in-addr.arpa",
        IpAddr::V6(_) => "ip6.arpa",
    };
    format!("{}.{suffix}", parts.join("."))
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::dns::{Answer, DnsAnswers, RecordTable};

    /// A table as the evaluator's DNS, without a resolver (CNAMEs followed as a resolver would).
    impl SpfDns for RecordTable {
        async fn query(&self, name: &str, kind: Kind) -> Result<Vec<RecordData>, String> {
            let mut name = name.to_string();
            for _ in 0..8 {
                match self.answer(&name, kind) {
                    Answer::Records(records) => match records.as_slice() {
                        [RecordData::Cname(target)] if kind != Kind::Cname => {
                            name.clone_from(target);
                        }
                        _ => return Ok(records),
                    },
                    Answer::NoData | Answer::NoSuchName => return Ok(Vec::new()),
                    Answer::Timeout => return Err("timed out".into()),
                    Answer::ServerFailure => return Err("SERVFAIL".into()),
                }
            }
            Err("CNAME loop".into())
        }
    }

    fn table(lines: &str) -> RecordTable {
        RecordTable::parse(lines).unwrap()
    }

    async fn run(table: &RecordTable, ip: &str, sender: &str) -> Outcome {
        let client = Client {
            ip: ip.parse().unwrap(),
            sender,
            helo: "mail.example.org",
            receiver: "mx.example.net",
            now: 1_700_000_000,
        };
        let domain = sender.rsplit_once('@').unwrap().1;
        check_host(table, client, domain).await
    }

    async fn result(lines: &str, ip: &str) -> SpfResult {
        run(&table(lines), ip, "someone@example.com").await.result
    }

    #[tokio::test]
    async fn ten_dns_terms_are_allowed_and_the_eleventh_is_a_permerror() {
        let mut lines = String::new();
        for count in [10, 11] {
            lines.clear();
            let terms: Vec<String> = (0..count).map(|i| format!("a:h{i}.example.com")).collect();
            let _ = writeln!(lines, "example.com TXT v=spf1 {} -all", terms.join(" "));
            for i in 0..count {
                let _ = writeln!(lines, "h{i}.example.com A 192.0.2.{}", 100 + i);
            }
            let expected = if count == 10 {
                SpfResult::Fail
            } else {
                SpfResult::PermError
            };
            assert_eq!(result(&lines, "192.0.2.1").await, expected, "{count} terms");
        }
    }

    #[tokio::test]
    async fn the_lookup_limit_spans_includes_and_redirects() {
        // Each hop costs one term; a redirect loop ends at the limit instead of running forever.
        assert_eq!(
            result("example.com TXT v=spf1 redirect=example.com\n", "192.0.2.1").await,
            SpfResult::PermError
        );
        let lines = "example.com TXT v=spf1 include:a.example.com include:a.example.com -all\n\
                     a.example.com TXT v=spf1 a a a a a -all\n\
                     a.example.com A 192.0.2.9\n";
        assert_eq!(result(lines, "192.0.2.1").await, SpfResult::PermError);
        assert_eq!(
            result(&lines.replace(" a a a a a", " a a a a"), "192.0.2.1").await,
            SpfResult::Fail
        );
    }

    #[tokio::test]
    async fn a_third_void_lookup_is_a_permerror() {
        let two =
            "example.com TXT v=spf1 a:x.example.com exists:y.example.com ip4:192.0.2.1 -all\n";
        assert_eq!(result(two, "192.0.2.1").await, SpfResult::Pass);
        let three = "example.com TXT v=spf1 a:x.example.com exists:y.example.com mx:z.example.com ip4:192.0.2.1 -all\n";
        assert_eq!(result(three, "192.0.2.1").await, SpfResult::PermError);
    }

    #[tokio::test]
    async fn mx_looks_up_ten_hosts_and_no_more() {
        let mut lines = "example.com TXT v=spf1 mx -all\n".to_string();
        for i in 0..11u8 {
            let _ = writeln!(lines, "example.com MX {i} m{i}.example.com");
            let _ = writeln!(lines, "m{i}.example.com A 192.0.2.{i}");
        }
        // Hosts are tried by preference: the tenth is still looked up, the eleventh is not.
        assert_eq!(result(&lines, "192.0.2.9").await, SpfResult::Pass);
        assert_eq!(result(&lines, "192.0.2.10").await, SpfResult::PermError);
        assert_eq!(result(&lines, "192.0.2.99").await, SpfResult::PermError);
        let ten: String =
            lines
                .lines()
                .filter(|l| !l.contains("m10."))
                .fold(String::new(), |mut ten, l| {
                    let _ = writeln!(ten, "{l}");
                    ten
                });
        assert_eq!(result(&ten, "192.0.2.99").await, SpfResult::Fail);
    }

    #[tokio::test]
    async fn timeouts_are_temperror_wherever_they_happen() {
        for lines in [
            "example.com TXT TIMEOUT\n",
            "example.com TXT v=spf1 a:slow.example.com -all\nslow.example.com A TIMEOUT\n",
            "example.com TXT v=spf1 mx -all\nexample.com MX 10 slow.example.com\nslow.example.com A TIMEOUT\n",
            "example.com TXT v=spf1 include:slow.example.com -all\nslow.example.com TXT TIMEOUT\n",
            "example.com TXT v=spf1 exists:%{i}.slow.example.com -all\n192.0.2.1.slow.example.com A TIMEOUT\n",
            "example.com TXT v=spf1 a:broken.example.com -all\nbroken.example.com A SERVFAIL\n",
        ] {
            assert_eq!(
                result(lines, "192.0.2.1").await,
                SpfResult::TempError,
                "{lines}"
            );
        }
        // A timeout after the deciding term is never reached.
        let decided = "example.com TXT v=spf1 ip4:192.0.2.1 a:slow.example.com -all\nslow.example.com A TIMEOUT\n";
        assert_eq!(result(decided, "192.0.2.1").await, SpfResult::Pass);
    }

    #[tokio::test]
    async fn ptr_matches_validated_names_under_the_target() {
        let lines = "example.com TXT v=spf1 ptr -all\n\
                     1.2.0.192.in-addr.arpa PTR mail.example.com\n\
                     mail.example.com A 192.0.2.1\n\
                     2.2.0.192.in-addr.arpa PTR forged.example.com\n\
                     forged.example.com A 192.0.2.99\n\
                     3.2.0.192.in-addr.arpa PTR mail.other.test\n\
                     mail.other.test A 192.0.2.3\n";
        assert_eq!(result(lines, "192.0.2.1").await, SpfResult::Pass);
        assert_eq!(
            result(lines, "192.0.2.2").await,
            SpfResult::Fail,
            "not validated"
        );
        assert_eq!(
            result(lines, "192.0.2.3").await,
            SpfResult::Fail,
            "other domain"
        );
        assert_eq!(result(lines, "192.0.2.4").await, SpfResult::Fail, "no PTR");
    }

    #[tokio::test]
    async fn macros_build_the_names_looked_up() {
        // RFC 7208 section 7.4's per-user policy, and %{p} from a validated PTR name.
        let lines = "example.com TXT v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} ptr:%{p} -all\n\
                     1.2.0.192.someone._spf.example.com A 127.0.0.2\n\
                     5.2.0.192.in-addr.arpa PTR host.example.net\n\
                     host.example.net A 192.0.2.5\n";
        let table = table(lines);
        assert_eq!(
            run(&table, "192.0.2.1", "someone@example.com").await.result,
            SpfResult::Pass
        );
        assert_eq!(
            run(&table, "192.0.2.1", "other@example.com").await.result,
            SpfResult::Fail
        );
        assert_eq!(
            run(&table, "192.0.2.5", "other@example.com").await.result,
            SpfResult::Pass
        );
    }

    #[tokio::test]
    async fn exp_explains_a_fail_and_can_never_change_it() {
        let lines = "example.com TXT v=spf1 -all exp=why.%{d}\n\
                     why.example.com TXT %{c} is not one of %{d}'s mail servers (%{l})\n";
        let outcome = run(&table(lines), "192.0.2.1", "someone@example.com").await;
        assert_eq!(outcome.result, SpfResult::Fail);
        assert_eq!(
            outcome.explanation.as_deref(),
            Some("192.0.2.1 is not one of example.com's mail servers (someone)")
        );
        for broken in [
            "example.com TXT v=spf1 -all exp=why.example.com\n",
            "example.com TXT v=spf1 -all exp=why.example.com\nwhy.example.com TXT TIMEOUT\n",
            "example.com TXT v=spf1 -all exp=why.example.com\nwhy.example.com TXT bad %{x\n",
            "example.com TXT v=spf1 -all exp=why.example.com\nwhy.example.com TXT one\nwhy.example.com TXT two\n",
        ] {
            let outcome = run(&table(broken), "192.0.2.1", "someone@example.com").await;
            assert_eq!(
                (outcome.result, outcome.explanation),
                (SpfResult::Fail, None),
                "{broken}"
            );
        }
    }

    #[tokio::test]
    async fn redirect_and_include_results() {
        let lines = "example.com TXT v=spf1 include:in.example.com redirect=to.example.com\n\
                     in.example.com TXT v=spf1 ip4:192.0.2.1 -all\n\
                     to.example.com TXT v=spf1 ip4:192.0.2.2 ~all\n\
                     none.example.com TXT v=spf1 redirect=nothing.example.com\n";
        let table = table(lines);
        let at = |ip: &'static str, sender: &'static str| run(&table, ip, sender);
        assert_eq!(
            at("192.0.2.1", "a@example.com").await.result,
            SpfResult::Pass
        );
        assert_eq!(
            at("192.0.2.2", "a@example.com").await.result,
            SpfResult::Pass
        );
        assert_eq!(
            at("192.0.2.3", "a@example.com").await.result,
            SpfResult::SoftFail
        );
        assert_eq!(
            at("192.0.2.3", "a@none.example.com").await.result,
            SpfResult::PermError
        );
        assert_eq!(
            at("192.0.2.3", "a@nowhere.example.com").await.result,
            SpfResult::None
        );
        assert_eq!(at("192.0.2.3", "a@localhost").await.result, SpfResult::None);
    }

    #[tokio::test]
    async fn address_families_never_cross() {
        let lines = "example.com TXT v=spf1 ip6:::/0 a//0 ?all\nexample.com AAAA 2001:db8::1\n";
        assert_eq!(result(lines, "192.0.2.1").await, SpfResult::Neutral);
        assert_eq!(result(lines, "2001:db8::2").await, SpfResult::Pass);
        let lines = "example.com TXT v=spf1 ip4:0.0.0.0/0 a/0 ?all\nexample.com A 192.0.2.1\n";
        assert_eq!(result(lines, "2001:db8::2").await, SpfResult::Neutral);
        assert_eq!(result(lines, "198.51.100.1").await, SpfResult::Pass);
    }

    #[test]
    fn networks_and_names() {
        let v4 = |text: &str| u128::from(text.parse::<std::net::Ipv4Addr>().unwrap().to_bits());
        assert!(in_network(v4("192.0.2.77"), v4("192.0.2.0"), 24, 32));
        assert!(!in_network(v4("192.0.3.1"), v4("192.0.2.0"), 24, 32));
        assert!(in_network(v4("1.2.3.4"), v4("9.9.9.9"), 0, 32));
        assert!(in_network(u128::MAX, 0, 0, 128));
        assert!(!in_network(u128::MAX, 0, 1, 128));
        assert!(within("mail.example.com", "example.com"));
        assert!(within("Example.COM.", "example.com"));
        assert!(!within("badexample.com", "example.com"));
        assert!(queryable("a.b"));
        assert!(!queryable(&format!("{}.b", "a".repeat(64))));
        assert!(!queryable("a..b"));
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa"
        );
    }
}
