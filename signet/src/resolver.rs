//! The real resolver behind the app's [`Dns`] seam: hickory-resolver, asking the configured
//! upstream servers (or the system's), as verifiers on the internet would.

use std::time::Duration;

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
        Ok(HickoryDns { resolver })
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
        let mut exchanges: Vec<(u16, String)> =
            match self.resolver.lookup(absolute(domain), RecordType::MX).await {
                Ok(lookup) => lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect(),
                Err(e) if e.is_nx_domain() => {
                    return MxAnswer::NoMail(format!("{domain} does not exist (NXDOMAIN)"));
                }
                Err(e) if e.is_no_records_found() => Vec::new(),
                Err(e) => return MxAnswer::Unknown(format!("MX lookup for {domain}: {e}")),
            };
        if exchanges.len() == 1 && exchanges[0].1 == "." {
            return MxAnswer::NoMail(format!("{domain} accepts no mail (null MX, RFC 7505)"));
        }
        if exchanges.is_empty() {
            exchanges.push((0, domain.to_string())); // the implicit MX
        }
        exchanges.sort_by_key(|(preference, _)| *preference);
        let mut hosts = Vec::new();
        let mut trouble = None;
        for (_, exchange) in exchanges {
            match self.resolver.lookup_ip(absolute(&exchange)).await {
                Ok(found) => hosts.push((exchange, found.iter().collect())),
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => {}
                Err(e) => trouble = Some(format!("address of {exchange}: {e}")),
            }
        }
        match (hosts.is_empty(), trouble) {
            (false, _) => MxAnswer::Hosts(hosts),
            (true, Some(why)) => MxAnswer::Unknown(why),
            (true, None) => MxAnswer::NoMail(format!("no mail host of {domain} has an address")),
        }
    }
}
