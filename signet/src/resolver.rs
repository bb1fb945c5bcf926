//! The real resolver behind the app's [`Dns`] seam: hickory-resolver, asking the configured
//! upstream servers (or the system's), as verifiers on the internet would.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use signet_app::{Dns, LookupError};
use signet_smtp::delivery::MxAnswer;

use crate::config::ResolverSettings;

#[derive(Debug, Clone)]
pub struct HickoryDns {
    resolver: TokioResolver,
    /// MX answers for delivery, for their TTL (the resolver itself keeps nothing, see below).
    mx_cache: Arc<MxCache>,
}

impl HickoryDns {
    pub fn new(settings: &ResolverSettings) -> anyhow::Result<HickoryDns> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if settings.nameservers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| {
                anyhow::anyhow!("cannot read the system resolver configuration: {e}")
            })?
        } else {
            let servers = settings
                .nameservers
                .iter()
                .map(|addr| {
                    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                    for connection in &mut server.connections {
                        connection.port = addr.port();
                    }
                    server
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = Duration::from_secs(
            u64::try_from(settings.timeout.seconds())
                .unwrap_or(5)
                .max(1),
        );
        options.attempts = 1;
        // Customers fix their DNS while we watch: don't let a cached NXDOMAIN hide the fix.
        options.cache_size = 0;
        options.ndots = 0;
        let resolver = builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start the resolver: {e}"))?;
        Ok(HickoryDns {
            resolver,
            mx_cache: Arc::default(),
        })
    }
}

/// An absolute name, so no search domain is ever appended.
fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

fn temporary(name: &str, e: &NetError) -> LookupError {
    LookupError(format!("{name}: {e}"))
}

impl Dns for HickoryDns {
    async fn cname(&self, name: &str) -> Result<Option<String>, LookupError> {
        match self
            .resolver
            .lookup(absolute(name), RecordType::CNAME)
            .await
        {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .find_map(|record| match &record.data {
                    RData::CNAME(target) => Some(target.0.to_ascii()),
                    _ => None,
                })),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(None),
            Err(e) => Err(temporary(name, &e)),
        }
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        match self.resolver.lookup(absolute(name), RecordType::TXT).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(temporary(name, &e)),
        }
    }
}

/// Where a recipient domain's mail goes, for delivery without a smart host: its MX hosts by
/// preference with their addresses, or the domain itself when it has no MX (RFC 5321 5.1).
impl signet_smtp::delivery::MxLookup for HickoryDns {
    fn hosts<'a>(
        &'a self,
        domain: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = MxAnswer> + Send + 'a>> {
        Box::pin(self.mx_hosts(domain))
    }
}

impl HickoryDns {
    async fn mx_hosts(&self, domain: &str) -> MxAnswer {
        let key = domain.to_ascii_lowercase();
        if let Some(hosts) = self.mx_cache.get(&key, Instant::now()) {
            return MxAnswer::Hosts(hosts);
        }
        // Until when the answer may be reused: the least TTL of the records it came from; an
        // answer that rests on the absence of an MX, or on a failed address lookup, is not kept.
        let mut until = None::<Instant>;
        let mut keep = |valid_until: Instant| {
            until = Some(until.map_or(valid_until, |u| u.min(valid_until)));
        };
        let mut exchanges: Vec<(u16, String)> =
            match self.resolver.lookup(absolute(domain), RecordType::MX).await {
                Ok(lookup) => {
                    keep(lookup.valid_until());
                    lookup
                        .answers()
                        .iter()
                        .filter_map(|record| match &record.data {
                            RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                            _ => None,
                        })
                        .collect()
                }
                Err(e) if e.is_nx_domain() => {
                    return MxAnswer::NoMail(format!("{domain} does not exist (NXDOMAIN)"));
                }
                Err(e) if e.is_no_records_found() => Vec::new(),
                Err(e) => return MxAnswer::Unknown(format!("MX lookup for {domain}: {e}")),
            };
        if exchanges.len() == 1 && exchanges[0].1 == "." {
            return MxAnswer::NoMail(format!("{domain} accepts no mail (null MX, RFC 7505)"));
        }
        let cacheable = !exchanges.is_empty();
        if exchanges.is_empty() {
            exchanges.push((0, domain.to_string())); // the implicit MX
        }
        exchanges.sort_by_key(|(preference, _)| *preference);
        let mut hosts = Vec::new();
        let mut trouble = None;
        for (_, exchange) in exchanges {
            match self.resolver.lookup_ip(absolute(&exchange)).await {
                Ok(found) => {
                    keep(found.valid_until());
                    hosts.push((exchange, found.iter().collect()));
                }
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => {}
                Err(e) => trouble = Some(format!("address of {exchange}: {e}")),
            }
        }
        match (hosts.is_empty(), trouble) {
            (false, trouble) => {
                if let (true, None, Some(until)) = (cacheable, trouble, until) {
                    self.mx_cache.insert(&key, &hosts, until, Instant::now());
                }
                MxAnswer::Hosts(hosts)
            }
            (true, Some(why)) => MxAnswer::Unknown(why),
            (true, None) => MxAnswer::NoMail(format!("no mail host of {domain} has an address")),
        }
    }
}

/// Mail hosts by recipient domain, each with the addresses they had, until the least TTL of
/// the records behind them (at most an hour). The resolver runs without a cache so that CNAME
/// checks see a customer's fix at once; delivery would otherwise ask for MX and addresses on
/// every message.
#[derive(Debug, Default)]
struct MxCache(Mutex<HashMap<String, (Instant, MailHosts)>>);

type MailHosts = Vec<(String, Vec<IpAddr>)>;

/// Most domains kept; a full cache starts again empty rather than grow.
const MX_CACHE_DOMAINS: usize = 10_000;
/// Longest an answer is kept, whatever its TTL.
const MX_CACHE_LONGEST: Duration = Duration::from_hours(1);

impl MxCache {
    fn get(&self, domain: &str, now: Instant) -> Option<MailHosts> {
        let entries = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (until, hosts) = entries.get(domain)?;
        (now < *until).then(|| hosts.clone())
    }

    fn insert(&self, domain: &str, hosts: &MailHosts, until: Instant, now: Instant) {
        let until = until.min(now + MX_CACHE_LONGEST);
        if until <= now {
            return; // a TTL of 0: not to be kept
        }
        let mut entries = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MX_CACHE_DOMAINS && !entries.contains_key(domain) {
            entries.clear();
        }
        entries.insert(domain.to_string(), (until, hosts.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(address: &str) -> MailHosts {
        vec![("mx.example.org".into(), vec![address.parse().unwrap()])]
    }

    #[test]
    fn mx_answers_are_kept_for_their_ttl_at_most_an_hour() {
        let cache = MxCache::default();
        let now = Instant::now();
        cache.insert(
            "example.org",
            &hosts("192.0.2.1"),
            now + Duration::from_mins(5),
            now,
        );
        assert_eq!(cache.get("example.org", now), Some(hosts("192.0.2.1")));
        assert_eq!(
            cache.get("example.org", now + Duration::from_secs(299)),
            Some(hosts("192.0.2.1"))
        );
        assert_eq!(cache.get("example.org", now + Duration::from_mins(5)), None);
        assert_eq!(cache.get("example.net", now), None);

        cache.insert(
            "long.example",
            &hosts("192.0.2.2"),
            now + Duration::from_hours(24),
            now,
        );
        assert!(
            cache
                .get("long.example", now + Duration::from_secs(3599))
                .is_some()
        );
        assert!(
            cache
                .get("long.example", now + Duration::from_hours(1))
                .is_none()
        );

        cache.insert("zero.example", &hosts("192.0.2.3"), now, now);
        assert!(
            cache.get("zero.example", now).is_none(),
            "TTL 0 is not kept"
        );

        cache.insert(
            "example.org",
            &hosts("192.0.2.9"),
            now + Duration::from_mins(1),
            now,
        );
        assert_eq!(
            cache.get("example.org", now),
            Some(hosts("192.0.2.9")),
            "replaced"
        );
    }

    #[test]
    fn a_full_mx_cache_starts_again() {
        let cache = MxCache::default();
        let now = Instant::now();
        let until = now + Duration::from_mins(1);
        for n in 0..MX_CACHE_DOMAINS {
            cache.insert(&format!("d{n}.example"), &hosts("192.0.2.1"), until, now);
        }
        assert!(cache.get("d0.example", now).is_some());
        cache.insert("one-more.example", &hosts("192.0.2.1"), until, now);
        assert!(cache.get("d0.example", now).is_none());
        assert!(cache.get("one-more.example", now).is_some());
    }
}
