//! The key zone: built from the store by the app, served by `signet-dns-server`.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};
use signet_dns_server::{DnsConfig, DnsServer, ZoneHandle};
use signet_zone::{Zone, ZoneSettings};
use tokio::sync::watch;

use crate::Signet;
use crate::config::Config;

/// SOA/NS settings from `signet.toml`.
pub fn settings(config: &Config) -> ZoneSettings {
    let mut settings = ZoneSettings::new(config.key_zone.name().as_str());
    if !config.dns.nameservers.is_empty() {
        settings.nameservers.clone_from(&config.dns.nameservers);
    }
    settings.ttl = config.dns.ttl;
    settings.negative_ttl = config.dns.ttl.min(300);
    settings.ns_address = match config.dns.listen.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => ip,
        _ => Ipv4Addr::LOCALHOST,
    };
    settings
}

/// The zone as the store has it now.
pub async fn build(config: &Config, service: &Signet) -> Result<Zone> {
    let contents = service.zone_contents().await?;
    Zone::new(settings(config), contents.serial, contents.records)
        .context("the key zone cannot be built")
}

/// Binds the DNS sockets (so a taken port fails `serve` at once) and serves in a task.
pub async fn spawn_server(
    config: &Config,
    handle: ZoneHandle,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<Result<(), signet_dns_server::DnsError>>> {
    let dns = DnsConfig {
        listen: config.dns.listen,
        secondaries: config.dns.secondaries.clone(),
        limits: config.dns.limits,
    };
    let server = DnsServer::bind(&dns).await?;
    Ok(tokio::spawn(server.run(handle, stop)))
}
