//! The delivery worker: takes spooled messages to the next hop, retries with back-off, and
//! tells senders (RFC 3464 DSN) about recipients that failed or expired. A message leaves the
//! spool only when every recipient is delivered or reported, and a DSN is spooled before the
//! message it reports on is removed, so nothing acknowledged is lost on the way.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::client::{ConnectionPool, NextHop, NextHopTls, RecipientOutcome, send};
use crate::counters::{Counter, Counters};
use crate::spool::{Envelope, QueueId, Spool};

/// Where mail goes next.
#[derive(Clone)]
pub enum Route {
    /// Everything to one smart host.
    SmartHost(NextHop),
    /// Each recipient domain to its MX hosts (RFC 5321 section 5.1), on `port` (25).
    Mx {
        lookup: Arc<dyn MxLookup>,
        port: u16,
        tls: NextHopTls,
    },
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::SmartHost(hop) => f.debug_tuple("SmartHost").field(hop).finish(),
            Route::Mx { port, tls, .. } => f
                .debug_struct("Mx")
                .field("port", port)
                .field("tls", tls)
                .finish_non_exhaustive(),
        }
    }
}

/// What the DNS says about where a domain's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// The hosts to try, best first, each with its addresses.
    Hosts(Vec<(String, Vec<std::net::IpAddr>)>),
    /// The domain does not exist, or says it takes no mail (a null MX, RFC 7505): give up.
    NoMail(String),
    /// The lookup failed for now (timeout, SERVFAIL): try again later.
    Unknown(String),
}

/// The MX lookup (with the implicit MX of RFC 5321 section 5.1 when there is none) behind the
/// configured resolver; a seam, so tests need no DNS.
pub trait MxLookup: Send + Sync {
    fn hosts<'a>(
        &'a self,
        domain: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = MxAnswer> + Send + 'a>>;
}

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Where mail goes next.
    pub route: Route,
    /// The name this host gives in EHLO and in DSNs.
    pub hostname: String,
    /// How long a message may wait before its deferred recipients are reported as failed.
    pub queue_lifetime: Duration,
    /// Per-step timeout of a transaction.
    pub timeout: Duration,
    /// Most deliveries under way at once.
    pub parallel: usize,
    /// Where delivered, deferred and bounced recipients are counted.
    pub counters: Arc<Counters>,
    /// Sessions kept open between messages to the same next hop.
    pub connections: Arc<ConnectionPool>,
}

/// How often the whole spool is looked through for entries that came due (retries, and
/// entries another process changed: `signet queue flush`). Fresh mail does not wait for it.
const RESCAN: Duration = Duration::from_secs(5);
/// How long a stopping worker lets deliveries under way finish.
const FINISH: Duration = Duration::from_secs(30);

/// Back-off between attempts: 1, 5, 15, 30 minutes, then hourly.
pub fn retry_delay(attempts: u32) -> Duration {
    let minutes = match attempts {
        0 | 1 => 1,
        2 => 5,
        3 => 15,
        4 => 30,
        _ => 60,
    };
    Duration::from_secs(60 * minutes)
}

/// Delivers until `stop` turns true: up to [`DeliveryConfig::parallel`] messages at once, each
/// at most once at a time. `fresh` brings the ids of newly spooled messages, due at once; the
/// rest is found by rescanning the spool.
pub async fn run(
    spool: Arc<Spool>,
    config: DeliveryConfig,
    mut fresh: mpsc::UnboundedReceiver<QueueId>,
    mut stop: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let mut queue = DueQueue::default();
    let mut tasks = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, QueueId> = HashMap::new();
    let mut next_scan = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_scan {
            let spool = Arc::clone(&spool);
            let due = tokio::task::spawn_blocking(move || due_messages(&spool))
                .await
                .unwrap_or_default();
            queue.extend(due);
            config.connections.close_idle();
            next_scan = tokio::time::Instant::now() + RESCAN;
        }
        while running.len() < config.parallel.max(1) {
            let Some(id) = queue.start_next() else { break };
            let (spool, config) = (Arc::clone(&spool), Arc::clone(&config));
            let task = tasks.spawn(async move { attempt(&spool, id, &config).await });
            running.insert(task.id(), id);
        }
        tokio::select! {
            _ = stop.changed() => break,
            Some(id) = fresh.recv() => queue.extend([id]),
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let task = done.map_or_else(|e| e.id(), |(task, ())| task);
                if let Some(id) = running.remove(&task) {
                    queue.finished(id);
                }
            }
            () = tokio::time::sleep_until(next_scan) => {}
        }
    }
    // Let deliveries under way finish: cut off, one could reach the next hop and still be
    // spooled, and so be delivered twice after the restart.
    let _ =
        tokio::time::timeout(FINISH, async { while tasks.join_next().await.is_some() {} }).await;
}

/// Messages waiting for a delivery slot, and those being delivered; an id is in at most one.
#[derive(Debug, Default)]
struct DueQueue {
    waiting: VecDeque<QueueId>,
    known: HashSet<QueueId>,
}

impl DueQueue {
    fn extend(&mut self, ids: impl IntoIterator<Item = QueueId>) {
        for id in ids {
            if self.known.insert(id) {
                self.waiting.push_back(id);
            }
        }
    }

    fn start_next(&mut self) -> Option<QueueId> {
        self.waiting.pop_front()
    }

    fn finished(&mut self, id: QueueId) {
        self.known.remove(&id);
    }
}

fn due_messages(spool: &Spool) -> Vec<QueueId> {
    let now = SystemTime::now();
    spool
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|id| spool.envelope(*id).is_ok_and(|e| e.next_attempt <= now))
        .collect()
}

/// One attempt for one message.
pub async fn attempt(spool: &Arc<Spool>, id: QueueId, config: &DeliveryConfig) {
    let loaded = {
        let spool = Arc::clone(spool);
        tokio::task::spawn_blocking(move || spool.load(id)).await
    };
    let Ok(Ok((mut envelope, message))) = loaded else {
        warn!(%id, "delivery: cannot read the spooled message");
        return;
    };
    let outcomes = route(id, config, &envelope, &message).await;
    let now = SystemTime::now();
    let expired =
        now.duration_since(envelope.received_at).unwrap_or_default() > config.queue_lifetime;
    let mut deferred = Vec::new();
    let mut failed = Vec::new();
    for (recipient, outcome) in outcomes {
        match outcome {
            RecipientOutcome::Delivered => {
                config.counters.count(Counter::Delivered);
                info!(%id, %recipient, "delivered");
            }
            RecipientOutcome::Deferred(why) if expired => failed.push(Failed {
                recipient,
                reason: format!("gave up after {} attempts: {why}", envelope.attempts + 1),
                permanent: false,
            }),
            RecipientOutcome::Deferred(why) => {
                config.counters.count(Counter::Deferred);
                info!(%id, %recipient, "deferred: {why}");
                deferred.push(recipient);
            }
            RecipientOutcome::Failed(reason) => failed.push(Failed {
                recipient,
                reason,
                permanent: true,
            }),
        }
    }
    let spool_for_blocking = Arc::clone(spool);
    let config = config.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<(), crate::Error> {
        let spool = spool_for_blocking;
        if !failed.is_empty() {
            for f in &failed {
                config.counters.count(Counter::Bounced);
                warn!(%id, recipient = %f.recipient, "failed: {}", f.reason);
            }
            if envelope.sender.is_empty() {
                warn!(%id, "a bounce could not be delivered; it is dropped, as bounces are never bounced");
            } else {
                let report = dsn(&envelope, &message, &failed, &config.hostname, now);
                let bounce = Envelope {
                    sender: String::new(),
                    recipients: vec![envelope.sender.clone()],
                    tenant: envelope.tenant.clone(),
                    received_at: now,
                    attempts: 0,
                    next_attempt: now,
                    eight_bit_mime: false,
                    smtputf8: false,
                };
                let bounce_id = spool.store(&bounce, &report)?;
                info!(%id, %bounce_id, "DSN queued for {}", envelope.sender);
            }
        }
        if deferred.is_empty() {
            spool.remove(id)
        } else {
            envelope.attempts += 1;
            envelope.next_attempt = now + retry_delay(envelope.attempts);
            envelope.recipients = deferred;
            spool.update(id, &envelope)
        }
    })
    .await;
    if !matches!(result, Ok(Ok(()))) {
        warn!(%id, "delivery: cannot update the spool; the message stays queued as it was");
    }
}

/// One attempt at every recipient of a message, along the configured route.
async fn route(
    id: QueueId,
    config: &DeliveryConfig,
    envelope: &Envelope,
    message: &[u8],
) -> Vec<(String, RecipientOutcome)> {
    let transaction = |hop: NextHop, recipients: Vec<String>| async move {
        let outcomes = send(
            &hop,
            &config.connections,
            &config.hostname,
            &envelope.sender,
            &recipients,
            message,
            envelope.eight_bit_mime,
            config.timeout,
        )
        .await;
        let count = |wanted: fn(&RecipientOutcome) -> bool| {
            outcomes.iter().filter(|(_, o)| wanted(o)).count()
        };
        info!(
            %id,
            tenant = %envelope.tenant,
            from = %envelope.sender,
            next_hop = %hop.address,
            host = hop.name.as_deref().unwrap_or(""),
            delivered = count(|o| matches!(o, RecipientOutcome::Delivered)),
            deferred = count(|o| matches!(o, RecipientOutcome::Deferred(_))),
            failed = count(|o| matches!(o, RecipientOutcome::Failed(_))),
            "delivery attempt"
        );
        outcomes
    };
    match &config.route {
        Route::SmartHost(hop) => transaction(hop.clone(), envelope.recipients.clone()).await,
        Route::Mx { lookup, port, tls } => {
            let mut outcomes = Vec::new();
            for (domain, recipients) in by_domain(&envelope.recipients) {
                let answer = lookup.hosts(&domain).await;
                outcomes.extend(to_mx(answer, &domain, recipients, *port, tls, &transaction).await);
            }
            outcomes
        }
    }
}

/// Recipients grouped by domain (case-insensitive), in their first-seen order.
fn by_domain(recipients: &[String]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for recipient in recipients {
        let domain = recipient
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_ascii_lowercase();
        match groups.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, group)) => group.push(recipient.clone()),
            None => groups.push((domain, vec![recipient.clone()])),
        }
    }
    groups
}

/// Tries a domain's MX hosts in order: a host that cannot be reached, or that puts off every
/// recipient, hands over to the next; the first real answer stands.
async fn to_mx<F, Fut>(
    answer: MxAnswer,
    domain: &str,
    recipients: Vec<String>,
    port: u16,
    tls: &NextHopTls,
    transaction: &F,
) -> Vec<(String, RecipientOutcome)>
where
    F: Fn(NextHop, Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Vec<(String, RecipientOutcome)>>,
{
    let every = |outcome: RecipientOutcome| {
        recipients
            .iter()
            .map(|r| (r.clone(), outcome.clone()))
            .collect::<Vec<_>>()
    };
    let hosts = match answer {
        MxAnswer::Hosts(hosts) => hosts,
        MxAnswer::NoMail(why) => return every(RecipientOutcome::Failed(why)),
        MxAnswer::Unknown(why) => return every(RecipientOutcome::Deferred(why)),
    };
    let mut last = every(RecipientOutcome::Deferred(format!(
        "{domain}: no MX host has an address"
    )));
    for (name, addresses) in hosts {
        for address in addresses {
            let hop = NextHop {
                address: std::net::SocketAddr::new(address, port).to_string(),
                name: Some(name.clone()),
                tls: tls.clone(),
                login: None,
            };
            last = transaction(hop, recipients.clone()).await;
            if !last
                .iter()
                .all(|(_, o)| matches!(o, RecipientOutcome::Deferred(_)))
            {
                return last;
            }
        }
    }
    last
}

/// A recipient given up on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub recipient: String,
    pub reason: String,
    /// The next hop refused it (5xx); otherwise it expired in the queue.
    pub permanent: bool,
}

/// An RFC 3464 delivery status notification for `failed` recipients of `envelope`.
pub fn dsn(
    envelope: &Envelope,
    message: &[u8],
    failed: &[Failed],
    reporting_mta: &str,
    now: SystemTime,
) -> Vec<u8> {
    let boundary = format!(
        "signet-dsn-{}",
        now.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let headers_end = find_header_end(message);
    let mut out = String::new();
    let _ = write!(
        out,
        "From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>\r\n"
    );
    let _ = write!(out, "To: <{}>\r\n", envelope.sender);
    out.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    out.push_str("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
    let _ = write!(
        out,
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\r\n"
    );
    let _ = write!(
        out,
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    );
    let _ = write!(
        out,
        "This is the mail system at {reporting_mta}.\r\n\r\nYour message could not be delivered to:\r\n\r\n"
    );
    for f in failed {
        let _ = write!(out, "<{}>: {}\r\n", f.recipient, f.reason);
    }
    let _ = write!(
        out,
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
    );
    let _ = write!(out, "Reporting-MTA: dns; {reporting_mta}\r\n");
    for f in failed {
        let status = status_code(f);
        let diagnostic = f.reason.replace(['\r', '\n'], " ");
        let _ = write!(
            out,
            "\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n",
            f.recipient
        );
    }
    let _ = write!(
        out,
        "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    );
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&message[..headers_end]);
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// The RFC 3463 status of a failed recipient: the next hop's own enhanced code when its reply
/// had one (`550 5.1.1 …`), else 5.0.0 for a refusal and 4.4.7 for a message that ran out of
/// time.
fn status_code(failed: &Failed) -> String {
    if !failed.permanent {
        return "4.4.7".into();
    }
    failed
        .reason
        .split_whitespace()
        .find(|word| {
            let parts: Vec<&str> = word.split('.').collect();
            parts.len() == 3
                && parts[0] == "5"
                && parts[1..]
                    .iter()
                    .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map_or_else(|| "5.0.0".into(), str::to_string)
}

fn find_header_end(message: &[u8]) -> usize {
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2)
}
