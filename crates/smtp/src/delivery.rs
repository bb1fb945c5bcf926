//! The delivery worker: takes spooled messages to the next hop, retries with back-off, and
//! tells senders (RFC 3464 DSN) about recipients that failed or expired. A message leaves the
//! spool only when every recipient is delivered or reported, and a DSN is spooled before the
//! message it reports on is removed, so nothing acknowledged is lost on the way.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::address::Mailbox;
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

/// A newly spooled message for the worker, due at once. The gateway hands over the envelope
/// and message it has just written, which saves reading them back; an id alone is read from
/// the spool.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub id: QueueId,
    pub entry: Option<Entry>,
}

/// A spool entry in memory: its envelope and message.
pub type Entry = (Envelope, Arc<Vec<u8>>);

impl From<QueueId> for Fresh {
    fn from(id: QueueId) -> Self {
        Fresh { id, entry: None }
    }
}

/// Most bytes of fresh messages kept in memory while they wait for a delivery slot; beyond it
/// they wait on disk only, and are read back when their turn comes.
const PRELOADED_BYTES: usize = 64 << 20;

/// Delivers until `stop` turns true: up to [`DeliveryConfig::parallel`] messages at once, each
/// at most once at a time. `fresh` brings newly spooled messages, due at once; the rest is
/// found by rescanning the spool. Delivered messages are removed from the spool in batches by
/// a thread of their own (one directory fsync for many); a delivery holds its slot until its
/// entry is gone, so a rescan never starts it again, and at most `parallel` messages are ever
/// between the next hop's 250 and their removal (the ones a crash can deliver twice).
pub async fn run(
    spool: Arc<Spool>,
    config: DeliveryConfig,
    mut fresh: mpsc::UnboundedReceiver<Fresh>,
    mut stop: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let mut queue = DueQueue::default();
    let mut tasks = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, QueueId> = HashMap::new();
    let remover = Remover::start(Arc::clone(&spool));
    let mut next_scan = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_scan {
            let spool = Arc::clone(&spool);
            let due = tokio::task::spawn_blocking(move || due_messages(&spool))
                .await
                .unwrap_or_default();
            queue.extend(due.into_iter().map(Fresh::from));
            config.connections.close_idle();
            next_scan = tokio::time::Instant::now() + RESCAN;
        }
        while running.len() < config.parallel.max(1) {
            let Some((id, entry)) = queue.start_next() else {
                break;
            };
            let (spool, config, remover) =
                (Arc::clone(&spool), Arc::clone(&config), remover.clone());
            let task = tasks.spawn(async move {
                let entry = match entry {
                    Some(entry) => entry,
                    None => match load(&spool, id).await {
                        Some((envelope, message)) => (envelope, Arc::new(message)),
                        None => return,
                    },
                };
                let outcome = deliver(id, &config, entry).await;
                if outcome.is_complete()
                    && let Some(removed) = remover.remove(id)
                {
                    let _ = removed.await;
                } else {
                    settle(&spool, id, outcome, &config).await;
                }
            });
            running.insert(task.id(), id);
        }
        tokio::select! {
            _ = stop.changed() => break,
            Some(message) = fresh.recv() => queue.extend([message]),
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let task = done.map_or_else(|e| e.id(), |(task, ())| task);
                if let Some(id) = running.remove(&task) {
                    queue.finished(id);
                }
            }
            () = tokio::time::sleep_until(next_scan) => {}
        }
    }
    // Let deliveries under way finish, removals included: cut off, one could reach the next
    // hop and still be spooled, and so be delivered twice after the restart.
    let _ =
        tokio::time::timeout(FINISH, async { while tasks.join_next().await.is_some() {} }).await;
}

/// The thread that removes delivered messages from the spool, many per directory fsync, and
/// tells each delivery once its entry is gone for good.
#[derive(Clone)]
struct Remover {
    requests: Option<std::sync::mpsc::Sender<(QueueId, oneshot::Sender<()>)>>,
}

impl Remover {
    fn start(spool: Arc<Spool>) -> Remover {
        let (requests, pending) = std::sync::mpsc::channel::<(QueueId, oneshot::Sender<()>)>();
        let spawned = std::thread::Builder::new()
            .name("spool-remover".into())
            .spawn(move || {
                while let Ok(first) = pending.recv() {
                    let batch: Vec<_> = std::iter::once(first).chain(pending.try_iter()).collect();
                    let ids: Vec<QueueId> = batch.iter().map(|(id, _)| *id).collect();
                    if let Err(error) = spool.remove_all(&ids) {
                        warn!("delivery: cannot remove delivered messages from the spool: {error}");
                    }
                    for (_, done) in batch {
                        let _ = done.send(());
                    }
                }
            });
        let requests = match spawned {
            Ok(_) => Some(requests),
            Err(error) => {
                warn!("delivery: no remover thread ({error}); removing one by one");
                None
            }
        };
        Remover { requests }
    }

    /// Hands a delivered message over for removal, and tells when it is done; `None` if there
    /// is no one to take it, and the caller removes it itself.
    fn remove(&self, id: QueueId) -> Option<oneshot::Receiver<()>> {
        let (done, removed) = oneshot::channel();
        self.requests.as_ref()?.send((id, done)).ok()?;
        Some(removed)
    }
}

/// Messages waiting for a delivery slot, and those being delivered; an id is in at most one.
/// Fresh messages may wait with their envelope and message in memory, up to
/// [`PRELOADED_BYTES`] in all.
#[derive(Debug, Default)]
struct DueQueue {
    waiting: VecDeque<QueueId>,
    known: HashSet<QueueId>,
    preloaded: HashMap<QueueId, Entry>,
    preloaded_bytes: usize,
}

impl DueQueue {
    fn extend(&mut self, messages: impl IntoIterator<Item = Fresh>) {
        for Fresh { id, entry } in messages {
            if self.known.insert(id) {
                self.waiting.push_back(id);
                if let Some(entry) = entry
                    && self.preloaded_bytes + entry.1.len() <= PRELOADED_BYTES
                {
                    self.preloaded_bytes += entry.1.len();
                    self.preloaded.insert(id, entry);
                }
            }
        }
    }

    fn start_next(&mut self) -> Option<(QueueId, Option<Entry>)> {
        let id = self.waiting.pop_front()?;
        let entry = self.preloaded.remove(&id);
        if let Some((_, message)) = &entry {
            self.preloaded_bytes -= message.len();
        }
        Some((id, entry))
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

/// One attempt for one message: read from the spool, delivered, and the spool updated (the
/// entry removed, its envelope updated for a retry, a DSN spooled) before it returns.
pub async fn attempt(spool: &Arc<Spool>, id: QueueId, config: &DeliveryConfig) {
    let Some((envelope, message)) = load(spool, id).await else {
        return;
    };
    let outcome = deliver(id, config, (envelope, Arc::new(message))).await;
    settle(spool, id, outcome, config).await;
}

async fn load(spool: &Arc<Spool>, id: QueueId) -> Option<(Envelope, Vec<u8>)> {
    let spool = Arc::clone(spool);
    let loaded = tokio::task::spawn_blocking(move || spool.load(id)).await;
    if let Ok(Ok(entry)) = loaded {
        Some(entry)
    } else {
        warn!(%id, "delivery: cannot read the spooled message");
        None
    }
}

/// What one attempt came to, recipient by recipient.
struct Outcome {
    envelope: Envelope,
    message: Arc<Vec<u8>>,
    deferred: Vec<Mailbox>,
    failed: Vec<Failed>,
    at: SystemTime,
}

impl Outcome {
    /// Every recipient delivered: all that is left is removing the entry.
    fn is_complete(&self) -> bool {
        self.deferred.is_empty() && self.failed.is_empty()
    }
}

/// Delivers a message along the route and sorts its recipients into delivered (counted and
/// logged), deferred and failed.
async fn deliver(id: QueueId, config: &DeliveryConfig, (envelope, message): Entry) -> Outcome {
    let outcomes = route(id, config, &envelope, &message).await;
    let now = SystemTime::now();
    let expired =
        now.duration_since(envelope.received_at).unwrap_or_default() > config.queue_lifetime;
    let mut deferred = Vec::new();
    let mut failed = Vec::new();
    for (recipient, outcome) in outcomes {
        match outcome {
            // Logged with its attempt (`route`): one line per message delivered at once.
            RecipientOutcome::Delivered => config.counters.count(Counter::Delivered),
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
    Outcome {
        envelope,
        message,
        deferred,
        failed,
        at: now,
    }
}

/// Brings the spool up to date with an attempt: a DSN spooled for the failed recipients (the
/// sender's, unless the message is itself a bounce), then the entry removed, or its envelope
/// updated for the next attempt at the deferred ones.
async fn settle(spool: &Arc<Spool>, id: QueueId, outcome: Outcome, config: &DeliveryConfig) {
    let spool = Arc::clone(spool);
    let counters = Arc::clone(&config.counters);
    let hostname = config.hostname.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<(), crate::Error> {
        let Outcome {
            mut envelope,
            message,
            deferred,
            failed,
            at: now,
        } = outcome;
        if !failed.is_empty() {
            for f in &failed {
                counters.count(Counter::Bounced);
                warn!(%id, recipient = %f.recipient, "failed: {}", f.reason);
            }
            if let Some(sender) = &envelope.sender {
                let report = dsn(&envelope, &message, &failed, &hostname, now);
                let bounce = Envelope {
                    sender: None,
                    recipients: vec![sender.clone()],
                    tenant: envelope.tenant.clone(),
                    received_at: now,
                    attempts: 0,
                    next_attempt: now,
                    eight_bit_mime: false,
                    smtputf8: false,
                };
                let bounce_id = spool.store(&bounce, &report)?;
                info!(%id, %bounce_id, "DSN queued for {sender}");
            } else {
                warn!(%id, "a bounce could not be delivered; it is dropped, as bounces are never bounced");
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
) -> Vec<(Mailbox, RecipientOutcome)> {
    let transaction = |hop: NextHop, recipients: Vec<Mailbox>| async move {
        let outcomes = send(
            &hop,
            &config.connections,
            &config.hostname,
            envelope.sender.as_ref(),
            &recipients,
            message,
            envelope.eight_bit_mime,
            config.timeout,
        )
        .await;
        let count = |wanted: fn(&RecipientOutcome) -> bool| {
            outcomes.iter().filter(|(_, o)| wanted(o)).count()
        };
        let to: Vec<String> = recipients.iter().map(ToString::to_string).collect();
        info!(
            %id,
            tenant = %envelope.tenant,
            from = %envelope.sender.as_ref().map(ToString::to_string).unwrap_or_default(),
            to = %to.join(","),
            next_hop = %hop.address,
            // An MX host's name; a smart host is named by `next_hop` already.
            host = hop.name.as_deref().map(tracing::field::display),
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
fn by_domain(recipients: &[Mailbox]) -> Vec<(String, Vec<Mailbox>)> {
    let mut groups: Vec<(String, Vec<Mailbox>)> = Vec::new();
    for recipient in recipients {
        let domain = recipient.domain().to_string().to_ascii_lowercase();
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
    recipients: Vec<Mailbox>,
    port: u16,
    tls: &NextHopTls,
    transaction: &F,
) -> Vec<(Mailbox, RecipientOutcome)>
where
    F: Fn(NextHop, Vec<Mailbox>) -> Fut,
    Fut: std::future::Future<Output = Vec<(Mailbox, RecipientOutcome)>>,
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
    pub recipient: Mailbox,
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
    if let Some(sender) = &envelope.sender {
        let _ = write!(out, "To: <{sender}>\r\n");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            sender: Some("joe@contoso.com".parse().unwrap()),
            recipients: vec!["ann@example.org".parse().unwrap()],
            tenant: "contoso".into(),
            received_at: SystemTime::UNIX_EPOCH,
            attempts: 0,
            next_attempt: SystemTime::UNIX_EPOCH,
            eight_bit_mime: false,
            smtputf8: false,
        }
    }

    fn id(n: u64) -> QueueId {
        format!("{n:016x}").parse().unwrap()
    }

    fn fresh(n: u64, bytes: usize) -> Fresh {
        Fresh {
            id: id(n),
            entry: Some((envelope(), Arc::new(vec![b'x'; bytes]))),
        }
    }

    #[test]
    fn fresh_messages_keep_their_bytes_up_to_the_limit_and_each_id_waits_once() {
        let mut queue = DueQueue::default();
        let half = PRELOADED_BYTES / 2;
        queue.extend([fresh(1, half), fresh(2, half), fresh(3, 1)]);
        queue.extend([Fresh::from(id(1))]); // found again by a rescan
        let (first, entry) = queue.start_next().unwrap();
        assert_eq!(first, id(1));
        assert_eq!(entry.unwrap().1.len(), half);
        assert!(queue.start_next().unwrap().1.is_some());
        let (third, entry) = queue.start_next().unwrap();
        assert_eq!(third, id(3));
        assert!(entry.is_none(), "over the limit: read back from the spool");
        assert!(queue.start_next().is_none());
        assert_eq!(queue.preloaded_bytes, 0);

        queue.extend([Fresh::from(id(1))]);
        assert!(queue.start_next().is_none(), "still under way");
        queue.finished(id(1));
        queue.extend([Fresh::from(id(1))]);
        assert_eq!(queue.start_next().unwrap().0, id(1));
    }
}
