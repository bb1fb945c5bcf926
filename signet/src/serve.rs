//! `signet serve`: the key zone's DNS server, the signing gateway (relay, submission, delivery)
//! and the scheduler, together, until SIGTERM/SIGINT.
//!
//! Queries never touch the store: a refresher polls the zone serial (a cheap read) and, when it
//! moves, rebuilds the zone and swaps it into the server, so a change made with the CLI is
//! answered within a second without a restart. The scheduler runs a pass at least every minute
//! (more often when `check_interval` is shorter), each domain's CNAMEs being re-checked every
//! `check_interval`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::Signet;
use crate::config::Config;

/// How often the zone serial is polled.
const ZONE_POLL: Duration = Duration::from_millis(250);
/// How long a stop waits for HTTP requests under way.
const HTTP_DRAIN: Duration = Duration::from_secs(5);
/// The longest pause between two scheduler passes.
const MAX_SCHEDULER_PAUSE: Duration = Duration::from_mins(1);

pub async fn serve(config: Config, service: Signet) -> Result<()> {
    let service = Arc::new(service);
    let (stop_tx, stop) = watch::channel(false);
    let zone = crate::zone::build(&config, &service).await?;
    let handle = signet_dns_server::ZoneHandle::new(zone);
    let dns = crate::zone::spawn_server(&config, handle.clone(), stop.clone())
        .await
        .map_err(|e| cannot_listen("key-zone DNS server", config.dns.listen, &e))?;
    info!(listen = %config.dns.listen, zone = %config.key_zone.name(), "dns: serving the key zone over UDP and TCP");

    let counters = Arc::new(signet_smtp::Counters::default());
    let gateway = crate::gateway::spawn(
        &config,
        Arc::clone(&service),
        Arc::clone(&counters),
        stop.clone(),
    )
    .await?;
    let refresher = tokio::spawn(refresh_zone(
        config.clone(),
        Arc::clone(&service),
        handle,
        stop.clone(),
    ));
    let scheduler = tokio::spawn(schedule(config.clone(), Arc::clone(&service), stop.clone()));
    let http = spawn_http(&config, &service, counters, stop.clone()).await?;
    info!(
        "ready: dns up on {}, relay up on {}, submission up on {}, delivery up, scheduler up (pass every {}s), {}",
        config.dns.listen,
        config.smtp.relay_listen,
        config.smtp.submission_listen,
        scheduler_pause(&config).as_secs(),
        config
            .http
            .listen
            .map_or("http api off".to_string(), |addr| format!(
                "http api up on {addr}"
            ))
    );

    shutdown_signal().await;
    info!("stopping");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(refresher, scheduler);
    if let Some(http) = http {
        // Requests under way finish; a client that holds a connection open does not hold us.
        match tokio::time::timeout(HTTP_DRAIN, http).await {
            Ok(Ok(Err(e))) => error!("http: {e}"),
            Err(_) => warn!(
                "http: requests still open after {}s; stopping anyway",
                HTTP_DRAIN.as_secs()
            ),
            _ => {}
        }
    }
    for task in gateway {
        let _ = task.await;
    }
    dns.await.context("the DNS server task failed")??;
    service.store().close().await;
    info!("stopped");
    Ok(())
}

/// Why a listener could not start, said once: `relay listener 127.0.0.1:2525: address already
/// in use`. The operating system's reason is found in the error's chain and told in words.
pub fn cannot_listen(what: &str, address: SocketAddr, error: &anyhow::Error) -> anyhow::Error {
    let why = match error
        .chain()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
    {
        Some(io) => os_reason(io),
        None => format!("{error:#}"),
    };
    anyhow::anyhow!("{what} {address}: {why}")
}

fn os_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::AddrInUse => "address already in use".into(),
        ErrorKind::AddrNotAvailable => "address not available on this machine".into(),
        ErrorKind::PermissionDenied => {
            "permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)".into()
        }
        _ => error.to_string(),
    }
}

/// Starts the HTTP API (`[http] listen`) over the same use-cases as the CLI; `None` when off.
async fn spawn_http(
    config: &Config,
    service: &Arc<Signet>,
    counters: Arc<signet_smtp::Counters>,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>> {
    let Some(listen) = config.http.listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| cannot_listen("HTTP API listener", listen, &e.into()))?;
    let spool = signet_smtp::spool::Spool::open_alongside(config.data_dir.join("spool"))
        .context("cannot open the queue for the HTTP API")?;
    let verifier = crate::verify_cmd::for_server(config).await?;
    let mut state = signet_api::ApiState::new(Arc::clone(service), config.dns.ttl)
        .with_relay(Arc::new(RelayMetrics(counters)))
        .with_queue(Arc::new(SpoolQueue(spool)))
        .with_verifier(Arc::new(verifier));
    if let Some(token) = &config.http.metrics_token {
        state = state.with_metrics_token(&token.0);
    }
    let router = signet_api::router(state);
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    info!(%listen, "http: serving the API");
    Ok(Some(tokio::spawn(signet_api::serve(
        listener, router, shutdown,
    ))))
}

/// The gateway's counters as `/metrics` reports them: `signet_relay_<name>_total`.
#[derive(Debug)]
struct RelayMetrics(Arc<signet_smtp::Counters>);

impl signet_api::RelayCounters for RelayMetrics {
    fn samples(&self) -> Vec<signet_api::CounterSample> {
        signet_smtp::Counter::ALL
            .iter()
            .map(|&counter| signet_api::CounterSample {
                name: counter.name(),
                help: counter.help(),
                value: self.0.value(counter),
            })
            .collect()
    }
}

/// The spool as `GET /api/v1/queue` lists it, opened alongside the delivery worker's.
#[derive(Debug)]
struct SpoolQueue(signet_smtp::spool::Spool);

impl signet_api::QueueView for SpoolQueue {
    fn entries(&self) -> std::result::Result<Vec<signet_api::QueueEntry>, String> {
        crate::queue_entries(&self.0).map_err(|e| e.to_string())
    }
}

fn scheduler_pause(config: &Config) -> Duration {
    let check = Duration::from_secs(u64::try_from(config.check_interval.seconds()).unwrap_or(60));
    check.clamp(Duration::from_secs(1), MAX_SCHEDULER_PAUSE)
}

async fn refresh_zone(
    config: Config,
    service: Arc<Signet>,
    handle: signet_dns_server::ZoneHandle,
    mut stop: watch::Receiver<bool>,
) {
    let mut serial = handle.serial();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(ZONE_POLL) => {}
        }
        match service.zone_serial().await {
            Ok(current) if current == serial => {}
            Ok(_) => match crate::zone::build(&config, &service).await {
                Ok(zone) => {
                    serial = zone.serial();
                    info!(serial, records = zone.len(), "zone: new serial served");
                    handle.replace(zone);
                }
                Err(e) => error!("zone: cannot rebuild, still serving serial {serial}: {e:#}"),
            },
            Err(e) => warn!("zone: cannot read the serial: {e}"),
        }
    }
}

async fn schedule(config: Config, service: Arc<Signet>, mut stop: watch::Receiver<bool>) {
    let pause = scheduler_pause(&config);
    loop {
        // A pass may wait on slow DNS; a stop does not wait for it. Dropping the pass mid-way is
        // safe: each change it makes is its own transaction, and an unfinished one rolls back.
        let pass = tokio::select! {
            _ = stop.changed() => return,
            pass = service.tick() => pass,
        };
        match pass {
            Ok(report) => {
                for event in report.events {
                    info!("scheduler: {event}");
                }
            }
            Err(e) => error!("scheduler: pass failed: {e}"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
