//! The delivery worker against a scripted next hop on loopback: delivered messages leave the
//! spool, deferred ones are retried later, failed ones produce a DSN to the sender.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use signet_smtp::client::{NextHop, NextHopTls};
use signet_smtp::delivery::{DeliveryConfig, MxAnswer, MxLookup, Route, attempt, retry_delay, run};
use signet_smtp::spool::{Envelope, Spool};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A next hop that answers RCPT by the recipient's local part: `defer*` 451, `bad*` 550,
/// anything else 250; it records the messages it accepts.
async fn next_hop() -> (String, Arc<Mutex<Vec<String>>>) {
    next_hop_on("127.0.0.1:0", false, false).await
}

/// As [`next_hop`], listening on `address`; with `rcpts`, it records EHLO and the accepted
/// RCPT lines instead of the messages; with `hang_up`, it closes each session after its first
/// message without a word, as a server that times idle sessions out does.
async fn next_hop_on(
    address: &str,
    rcpts: bool,
    hang_up: bool,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(address).await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read);
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut line = String::new();
                while lines.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let reply: &[u8] = match line.to_ascii_uppercase() {
                        l if l.starts_with("EHLO") => {
                            if rcpts {
                                store.lock().unwrap().push("EHLO".into());
                            }
                            b"250-sink\r\n250 8BITMIME\r\n"
                        }
                        l if l.starts_with("RCPT TO:<DEFER") => b"451 4.3.0 try later\r\n",
                        l if l.starts_with("RCPT TO:<BAD") => b"550 5.1.1 no such user\r\n",
                        l if rcpts && l.starts_with("RCPT TO:") => {
                            store.lock().unwrap().push(line.trim_end().to_string());
                            b"250 ok\r\n"
                        }
                        l if l.starts_with("DATA") => {
                            write.write_all(b"354 go\r\n").await.unwrap();
                            let mut data = String::new();
                            loop {
                                let mut l = String::new();
                                lines.read_line(&mut l).await.unwrap();
                                if l == ".\r\n" {
                                    break;
                                }
                                data.push_str(&l);
                            }
                            if !rcpts {
                                store.lock().unwrap().push(data);
                            }
                            if hang_up {
                                write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                                return;
                            }
                            b"250 2.0.0 queued\r\n"
                        }
                        l if l.starts_with("QUIT") => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                    line.clear();
                }
            });
        }
    });
    (address, received)
}

/// Delivery as the tests want it: an hour's queue lifetime, five seconds per step.
fn config(route: Route, parallel: usize) -> DeliveryConfig {
    DeliveryConfig {
        route,
        hostname: "signet.test".into(),
        queue_lifetime: Duration::from_hours(1),
        timeout: Duration::from_secs(5),
        parallel,
        counters: Arc::default(),
        connections: Arc::default(),
    }
}

fn written(mailboxes: &[signet_smtp::Mailbox]) -> Vec<String> {
    mailboxes.iter().map(ToString::to_string).collect()
}

fn envelope(recipients: &[&str]) -> Envelope {
    let now = SystemTime::now();
    Envelope {
        sender: Some("joe@contoso.com".parse().unwrap()),
        recipients: recipients.iter().map(|r| r.parse().unwrap()).collect(),
        tenant: "contoso".into(),
        received_at: now,
        attempts: 0,
        next_attempt: now,
        eight_bit_mime: false,
        smtputf8: false,
    }
}

const MESSAGE: &[u8] = b"From: joe@contoso.com\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n";

#[tokio::test]
async fn delivered_deferred_and_failed_recipients_are_handled_apart() {
    let (address, received) = next_hop().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let config = DeliveryConfig {
        route: Route::SmartHost(NextHop::plain(address)),
        hostname: "signet.test".into(),
        queue_lifetime: Duration::from_hours(120),
        timeout: Duration::from_secs(5),
        parallel: 1,
        counters: Arc::default(),
        connections: Arc::default(),
    };
    let id = spool
        .store(
            &envelope(&["ann@example.org", "defer@example.org", "bad@example.org"]),
            MESSAGE,
        )
        .unwrap();
    attempt(&spool, id, &config).await;

    // Delivered once, dot-stuffing undone by the next hop's reader being raw: the dot is doubled.
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("\r\n..leading dot\r\n"), "{got:?}");
    // The deferred recipient stays, with a later attempt; the failed one got a DSN.
    let ids = spool.list().unwrap();
    assert_eq!(ids.len(), 2, "the message (deferred part) and its DSN");
    let kept = spool.envelope(id).unwrap();
    assert_eq!(written(&kept.recipients), ["defer@example.org"]);
    assert_eq!(kept.attempts, 1);
    assert!(kept.next_attempt >= SystemTime::now() + retry_delay(1) - Duration::from_secs(5));
    let dsn_id = *ids.iter().find(|i| **i != id).unwrap();
    let (bounce, report) = spool.load(dsn_id).unwrap();
    assert_eq!(bounce.sender, None);
    assert_eq!(written(&bounce.recipients), ["joe@contoso.com"]);
    let report = String::from_utf8(report).unwrap();
    assert!(
        report.contains("Content-Type: multipart/report; report-type=delivery-status"),
        "{report}"
    );
    assert!(
        report.contains("Final-Recipient: rfc822; bad@example.org"),
        "{report}"
    );
    assert!(
        report.contains("Status: 5.1.1"),
        "the next hop's code: {report}"
    );
    assert!(report.contains("550 5.1.1 no such user"), "{report}");
    assert!(
        !report.contains("ann@example.org"),
        "delivered recipients are not reported"
    );
    let counted = config.counters.snapshot();
    assert_eq!(
        (counted.delivered, counted.deferred, counted.bounced),
        (1, 1, 1),
        "{counted}"
    );
}

#[tokio::test]
async fn an_expired_message_is_reported_and_an_unreachable_hop_defers() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let config = DeliveryConfig {
        route: Route::SmartHost(NextHop::plain(closed)),
        hostname: "signet.test".into(),
        queue_lifetime: Duration::from_hours(1),
        timeout: Duration::from_secs(2),
        parallel: 1,
        counters: Arc::default(),
        connections: Arc::default(),
    };
    let fresh = spool
        .store(&envelope(&["ann@example.org"]), MESSAGE)
        .unwrap();
    attempt(&spool, fresh, &config).await;
    assert_eq!(
        spool.envelope(fresh).unwrap().attempts,
        1,
        "connection refused: deferred"
    );

    let mut old = envelope(&["ann@example.org"]);
    old.received_at = SystemTime::now() - Duration::from_hours(2);
    let old = spool.store(&old, MESSAGE).unwrap();
    attempt(&spool, old, &config).await;
    assert!(
        spool.envelope(old).is_err(),
        "the expired message left the queue"
    );
    let reports: Vec<_> = spool
        .list()
        .unwrap()
        .into_iter()
        .filter(|i| *i != fresh)
        .collect();
    assert_eq!(reports.len(), 1);
    let report = String::from_utf8(spool.message(reports[0]).unwrap()).unwrap();
    assert!(
        report.contains("gave up after 1 attempts") && report.contains("Status: 4.4.7"),
        "{report}"
    );
}

/// The worker: messages spooled before it started (found by its scan) and fresh ones (sent to
/// it) are all delivered, each exactly once, many at a time; a stop waits for those under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_delivers_each_message_once() {
    let (address, received) = next_hop().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let message = |n: usize| format!("From: joe@contoso.com\r\nSubject: {n}\r\n\r\nbody\r\n");
    for n in 0..20 {
        spool
            .store(&envelope(&["ann@example.org"]), message(n).as_bytes())
            .unwrap();
    }
    let (fresh, fresh_ids) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let config = config(Route::SmartHost(NextHop::plain(address)), 8);
    let worker = tokio::spawn(run(Arc::clone(&spool), config, fresh_ids, stopped));
    for n in 20..40 {
        let id = spool
            .store(&envelope(&["ann@example.org"]), message(n).as_bytes())
            .unwrap();
        fresh.send(id.into()).unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !spool.list().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the spool never emptied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    worker.await.unwrap();
    let mut subjects: Vec<usize> = received
        .lock()
        .unwrap()
        .iter()
        .map(|data| {
            let line = data.lines().find(|l| l.starts_with("Subject: ")).unwrap();
            line["Subject: ".len()..].parse().unwrap()
        })
        .collect();
    subjects.sort_unstable();
    assert_eq!(subjects, (0..40).collect::<Vec<_>>());
}

/// DNS for the MX test: each domain's answer, as the resolver would give it.
struct FakeMx(Vec<(&'static str, MxAnswer)>);

impl MxLookup for FakeMx {
    fn hosts<'a>(
        &'a self,
        domain: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = MxAnswer> + Send + 'a>> {
        let answer = self.0.iter().find(|(d, _)| *d == domain).map_or(
            MxAnswer::NoMail(format!("{domain}: no such domain")),
            |(_, a)| a.clone(),
        );
        Box::pin(async move { answer })
    }
}

/// Without a smart host each recipient domain goes to its own MX hosts, best first, falling
/// back to the next when one cannot be reached; a domain that takes no mail bounces, one whose
/// lookup failed waits.
#[tokio::test]
async fn mx_delivery_goes_to_each_domains_hosts() {
    let (first, first_got) = next_hop_on("127.0.0.2:0", true, false).await;
    let port: u16 = first.rsplit_once(':').unwrap().1.parse().unwrap();
    let (_, second_got) = next_hop_on(&format!("127.0.0.3:{port}"), true, false).await;
    let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
    let lookup = FakeMx(vec![
        (
            "a.example",
            MxAnswer::Hosts(vec![
                ("mx1.a.example".into(), vec![ip("127.0.0.4")]), // nobody listens there
                ("mx2.a.example".into(), vec![ip("127.0.0.2")]),
            ]),
        ),
        (
            "b.example",
            MxAnswer::Hosts(vec![("mx.b.example".into(), vec![ip("127.0.0.3")])]),
        ),
        (
            "slow.example",
            MxAnswer::Unknown("slow.example: timed out".into()),
        ),
    ]);
    let config = DeliveryConfig {
        route: Route::Mx {
            lookup: Arc::new(lookup),
            port,
            tls: NextHopTls::Off,
        },
        hostname: "signet.test".into(),
        queue_lifetime: Duration::from_hours(1),
        timeout: Duration::from_secs(5),
        parallel: 1,
        counters: Arc::default(),
        connections: Arc::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let id = spool
        .store(
            &envelope(&[
                "ann@a.example",
                "bob@B.example",
                "cy@gone.example",
                "di@slow.example",
            ]),
            MESSAGE,
        )
        .unwrap();
    attempt(&spool, id, &config).await;

    let rcpts = |got: &Arc<Mutex<Vec<String>>>| -> Vec<String> {
        got.lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("RCPT"))
            .cloned()
            .collect()
    };
    assert_eq!(
        rcpts(&first_got),
        ["RCPT TO:<ann@a.example>"],
        "the second MX of a.example"
    );
    assert_eq!(rcpts(&second_got), ["RCPT TO:<bob@B.example>"]);
    let kept = spool.envelope(id).unwrap();
    assert_eq!(
        written(&kept.recipients),
        ["di@slow.example"],
        "waits for DNS"
    );
    let dsn = spool
        .list()
        .unwrap()
        .into_iter()
        .find(|i| *i != id)
        .expect("a DSN");
    let report = String::from_utf8(spool.message(dsn).unwrap()).unwrap();
    assert!(
        report.contains("Final-Recipient: rfc822; cy@gone.example"),
        "{report}"
    );
    let counted = config.counters.snapshot();
    assert_eq!(
        (counted.delivered, counted.deferred, counted.bounced),
        (2, 1, 1),
        "{counted}"
    );
}

/// Messages to the same next hop share one session: one connection and one EHLO, then RSET and
/// MAIL for each further message.
#[tokio::test]
async fn sessions_are_reused_between_messages() {
    let (address, seen) = next_hop_on("127.0.0.1:0", true, false).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let config = config(Route::SmartHost(NextHop::plain(address)), 1);
    for n in 0..3 {
        let id = spool
            .store(&envelope(&[&format!("r{n}@example.org")]), MESSAGE)
            .unwrap();
        attempt(&spool, id, &config).await;
    }
    assert!(spool.list().unwrap().is_empty());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|l| *l == "EHLO").count(), 1, "{seen:?}");
    assert_eq!(
        seen.iter().filter(|l| l.starts_with("RCPT")).count(),
        3,
        "{seen:?}"
    );
    assert_eq!(config.connections.idle(), 1, "kept for the next message");
}

/// A kept session the server has since closed is noticed at RSET, and the message goes out on
/// a fresh one instead of waiting for a retry.
#[tokio::test]
async fn a_closed_kept_session_is_replaced_not_deferred() {
    let (address, seen) = next_hop_on("127.0.0.1:0", true, true).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let config = config(Route::SmartHost(NextHop::plain(address)), 1);
    for n in 0..2 {
        let id = spool
            .store(&envelope(&[&format!("r{n}@example.org")]), MESSAGE)
            .unwrap();
        attempt(&spool, id, &config).await;
    }
    assert!(
        spool.list().unwrap().is_empty(),
        "both delivered, none deferred"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|l| *l == "EHLO").count(), 2, "{seen:?}");
    assert_eq!(config.counters.snapshot().deferred, 0);
}
