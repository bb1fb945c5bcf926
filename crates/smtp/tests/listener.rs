//! The listener over in-memory duplex streams: policy, spool, pipelining, limits, timeouts and
//! STARTTLS, without sockets.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{TestClient, TestPolicy, peer, spool, tls_configs};
use signet_smtp::{Error, Listener, ListenerConfig, Spool, SpoolSink};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;

type TestListener = Listener<TestPolicy, SpoolSink>;

fn listener_with(config: ListenerConfig, spool: &Arc<Spool>) -> TestListener {
    Listener::new(
        config,
        Arc::new(TestPolicy::default()),
        Arc::new(SpoolSink::new(spool.clone())),
    )
}

fn listener(spool: &Arc<Spool>) -> TestListener {
    listener_with(ListenerConfig::default(), spool)
}

fn connect(
    listener: &TestListener,
    from: SocketAddr,
) -> (TestClient<DuplexStream>, JoinHandle<Result<(), Error>>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let listener = listener.clone();
    let task = tokio::spawn(async move { listener.handle(server, from).await });
    (TestClient::new(client), task)
}

/// Connects and checks the greeting.
async fn greeted(
    listener: &TestListener,
    from: SocketAddr,
) -> (TestClient<DuplexStream>, JoinHandle<Result<(), Error>>) {
    let (mut client, task) = connect(listener, from);
    let greeting = client.reply().await.unwrap();
    assert_eq!(greeting, "220 localhost ESMTP signet\r\n");
    (client, task)
}

const MESSAGE: &str = "From: joe@example.com\r\nSubject: hello\r\n\r\nHi.\r\n";

#[tokio::test]
async fn a_relay_client_gets_its_message_spooled() {
    let (_directory, spool) = spool();
    let listener = listener(&spool);
    let (mut client, task) = greeted(&listener, peer("10.1.2.3")).await;
    assert!(
        client
            .command("EHLO relay.example")
            .await
            .starts_with("250-localhost\r\n")
    );
    assert_eq!(
        client
            .command("MAIL FROM:<joe@example.com> BODY=8BITMIME")
            .await,
        "250 2.1.0 Sender ok\r\n"
    );
    assert_eq!(
        client.command("RCPT TO:<ann@example.net>").await,
        "250 2.1.5 Recipient ok\r\n"
    );
    assert_eq!(
        client.command("RCPT TO:<bob@example.org>").await,
        "250 2.1.5 Recipient ok\r\n"
    );
    assert!(client.command("DATA").await.starts_with("354 "));
    client.send(format!("{MESSAGE}.\r\n").as_bytes()).await;
    let queued = client.reply().await.unwrap();
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    assert_eq!(client.command("QUIT").await, "221 2.0.0 Bye\r\n");
    assert_eq!(client.reply().await, None);
    task.await.unwrap().unwrap();

    let ids = spool.list().unwrap();
    assert_eq!(ids.len(), 1);
    assert!(queued.contains(&ids[0].to_string()));
    assert_eq!(listener.config().counters.snapshot().accepted, 1);
    let (envelope, data) = spool.load(ids[0]).unwrap();
    assert_eq!(data, MESSAGE.as_bytes());
    assert_eq!(envelope.tenant, "contoso");
    assert_eq!(envelope.sender.unwrap().to_string(), "joe@example.com");
    let recipients: Vec<String> = envelope
        .recipients
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(recipients, ["ann@example.net", "bob@example.org"]);
    assert!(envelope.eight_bit_mime);
    assert_eq!(envelope.attempts, 0);
}

#[tokio::test]
async fn pipelined_commands_in_one_write() {
    let (_directory, spool) = spool();
    let (mut client, task) = greeted(&listener(&spool), peer("10.1.2.3")).await;
    client
        .send(
            format!(
                "EHLO relay.example\r\nMAIL FROM:<joe@example.com>\r\nRCPT TO:<a@example.net>\r\n\
                 RCPT TO:<b@example.net>\r\nDATA\r\n{MESSAGE}.\r\nMAIL FROM:<joe@example.com>\r\n\
                 RCPT TO:<c@example.net>\r\nBDAT 3 LAST\r\nx\r\nRSET\r\nNOOP\r\nQUIT\r\n"
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(
        client.codes(12).await,
        [250, 250, 250, 250, 354, 250, 250, 250, 250, 250, 250, 221]
    );
    assert_eq!(client.reply().await, None);
    task.await.unwrap().unwrap();
    assert_eq!(spool.list().unwrap().len(), 2);
}

#[tokio::test]
async fn every_command() {
    let (_directory, spool) = spool();
    let (mut client, task) = greeted(&listener(&spool), peer("192.0.2.7")).await;
    let steps: &[(&str, &str)] = &[
        ("NOOP", "250 2.0.0 "),
        ("HELO old.example", "250 localhost\r\n"),
        ("EHLO new.example", "250-localhost\r\n"),
        ("VRFY joe", "252 2.5.0 "),
        ("EXPN staff", "502 5.5.1 "),
        ("HELP", "214 2.0.0 "),
        ("STARTTLS", "502 5.5.1 "),
        ("AUTH PLAIN AHVzZXIAc2VjcmV0", "235 2.7.0 "),
        (
            "MAIL FROM:<joe@fabrikam.example> SIZE=100 SMTPUTF8",
            "250 2.1.0 ",
        ),
        ("RCPT TO:<ann@example.net>", "250 2.1.5 "),
        ("RSET", "250 2.0.0 "),
        ("MAIL FROM:<joe@fabrikam.example>", "250 2.1.0 "),
        ("RCPT TO:<ann@example.net>", "250 2.1.5 "),
        ("BDAT 5", "250 2.0.0 5 octets received"),
        ("BDAT 0 LAST", "250 2.0.0 Ok: queued as "),
        ("MAIL FROM:<joe@fabrikam.example>", "250 2.1.0 "),
        ("RCPT TO:<ann@example.net>", "250 2.1.5 "),
        ("DATA", "354 "),
        ("QUIT", "221 2.0.0 "),
    ];
    for (command, expected) in steps {
        let reply = if command.starts_with("BDAT 5") {
            client.send(b"BDAT 5\r\nabc\r\n").await;
            client.reply().await.unwrap()
        } else if *command == "QUIT" {
            client.send(b"Subject: s\r\n\r\n.\r\n").await;
            assert!(
                client
                    .reply()
                    .await
                    .unwrap()
                    .starts_with("250 2.0.0 Ok: queued as ")
            );
            client.command(command).await
        } else {
            client.command(command).await
        };
        assert!(reply.starts_with(expected), "{command}: {reply:?}");
    }
    task.await.unwrap().unwrap();
    let ids = spool.list().unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(spool.message(ids[0]).unwrap(), b"abc\r\n");
    assert_eq!(spool.envelope(ids[1]).unwrap().tenant, "fabrikam");
}

#[tokio::test]
async fn never_an_open_relay() {
    let (_directory, spool) = spool();
    let listener = listener(&spool);
    let (mut client, task) = greeted(&listener, peer("192.0.2.7")).await;
    client.command("EHLO stranger.example").await;
    assert_eq!(
        client.command("MAIL FROM:<joe@example.com>").await,
        "250 2.1.0 Sender ok\r\n"
    );
    assert_eq!(
        client.command("RCPT TO:<ann@example.net>").await,
        "550 5.7.1 Relaying denied\r\n"
    );
    assert!(client.command("DATA").await.starts_with("554 5.5.1 "));
    client.command("QUIT").await;
    task.await.unwrap().unwrap();
    assert!(spool.list().unwrap().is_empty());
    // Both refusals count: the RCPT (the policy's) and the DATA without recipients (the
    // session's).
    let counted = listener.config().counters.snapshot();
    assert_eq!((counted.refused, counted.accepted), (2, 0), "{counted}");
}

#[tokio::test]
async fn authentication_decides_the_tenant() {
    let (_directory, spool) = spool();
    let (mut client, task) = greeted(&listener(&spool), peer("192.0.2.7")).await;
    let ehlo = client.command("EHLO laptop.example").await;
    assert!(ehlo.contains("250 AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    // "\0user\0wrong", then LOGIN with the right password.
    assert!(
        client
            .command("AUTH PLAIN AHVzZXIAd3Jvbmc=")
            .await
            .starts_with("535 5.7.8 ")
    );
    assert_eq!(client.command("AUTH LOGIN").await, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(client.command("dXNlcg==").await, "334 UGFzc3dvcmQ6\r\n");
    assert!(client.command("c2VjcmV0").await.starts_with("235 2.7.0 "));
    assert!(
        client
            .command("MAIL FROM:<joe@example.com>")
            .await
            .starts_with("550 5.7.1 ")
    );
    assert!(
        client
            .command("MAIL FROM:<joe@fabrikam.example>")
            .await
            .starts_with("250 ")
    );
    assert!(
        client
            .command("RCPT TO:<ann@example.net>")
            .await
            .starts_with("250 ")
    );
    client.command("DATA").await;
    client.send(format!("{MESSAGE}.\r\n").as_bytes()).await;
    assert!(
        client
            .reply()
            .await
            .unwrap()
            .starts_with("250 2.0.0 Ok: queued as ")
    );
    client.command("QUIT").await;
    task.await.unwrap().unwrap();
    let ids = spool.list().unwrap();
    assert_eq!(spool.envelope(ids[0]).unwrap().tenant, "fabrikam");
}

#[tokio::test]
async fn a_refused_client_hears_why_and_is_closed() {
    let (_directory, spool) = spool();
    let (mut client, task) = connect(&listener(&spool), peer("203.0.113.9"));
    assert_eq!(client.reply().await.unwrap(), "554 5.7.1 Access denied\r\n");
    assert_eq!(client.reply().await, None);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn smuggling_is_refused_over_the_wire() {
    let (_directory, spool) = spool();
    let (mut client, task) = greeted(&listener(&spool), peer("10.1.2.3")).await;
    client
        .send(
            b"EHLO relay.example\r\nMAIL FROM:<joe@example.com>\r\nRCPT TO:<a@example.net>\r\nDATA\r\n",
        )
        .await;
    assert_eq!(client.codes(4).await, [250, 250, 250, 354]);
    client
        .send(
            b"Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<ceo@example.com>\r\nRCPT TO:<b@example.net>\r\n\
              DATA\r\nSubject: forged\r\n\r\nsmuggled\r\n.\r\nNOOP\r\n",
        )
        .await;
    let refused = client.reply().await.unwrap();
    assert!(refused.starts_with("554 5.6.0 "), "{refused}");
    // In step: the NOOP after the real end of data is answered as a command.
    assert_eq!(client.reply().await.unwrap(), "250 2.0.0 Ok\r\n");
    assert_eq!(client.command("QUIT").await, "221 2.0.0 Bye\r\n");
    task.await.unwrap().unwrap();
    assert!(spool.list().unwrap().is_empty());
}

#[tokio::test]
async fn sessions_per_address_are_limited() {
    let (_directory, spool) = spool();
    let config = ListenerConfig {
        max_sessions_per_ip: 1,
        ..ListenerConfig::default()
    };
    let listener = listener_with(config, &spool);
    let (mut first, first_task) = greeted(&listener, peer("10.1.2.3")).await;
    let (mut second, second_task) = connect(&listener, peer("10.1.2.3"));
    assert!(second.reply().await.unwrap().starts_with("421 4.7.0 "));
    assert_eq!(second.reply().await, None);
    second_task.await.unwrap().unwrap();
    // Another address is not affected.
    let (mut other, other_task) = greeted(&listener, peer("10.9.9.9")).await;
    other.command("QUIT").await;
    other_task.await.unwrap().unwrap();
    // Once the first session ends its place is free again.
    first.command("QUIT").await;
    first_task.await.unwrap().unwrap();
    let (mut third, third_task) = greeted(&listener, peer("10.1.2.3")).await;
    third.command("QUIT").await;
    third_task.await.unwrap().unwrap();
}

/// Time is paused: tokio advances it only when every task waits, so this takes no real time.
#[tokio::test(start_paused = true)]
async fn an_idle_client_times_out() {
    let (_directory, spool) = spool();
    let config = ListenerConfig {
        command_timeout: Duration::from_mins(5),
        data_timeout: Duration::from_mins(3),
        ..ListenerConfig::default()
    };
    let listener = listener_with(config, &spool);
    let (mut client, task) = greeted(&listener, peer("10.1.2.3")).await;
    let started = tokio::time::Instant::now();
    let reply = client.reply().await.unwrap();
    assert!(reply.starts_with("421 4.4.2 "), "{reply}");
    assert!(started.elapsed() >= Duration::from_mins(5));
    assert_eq!(client.reply().await, None);
    task.await.unwrap().unwrap();

    let (mut client, task) = greeted(&listener, peer("10.1.2.3")).await;
    client
        .send(b"EHLO r\r\nMAIL FROM:<joe@example.com>\r\nRCPT TO:<a@example.net>\r\nDATA\r\npart")
        .await;
    assert_eq!(client.codes(4).await, [250, 250, 250, 354]);
    let started = tokio::time::Instant::now();
    // The message's deadline (3 minutes) comes before the read's (5).
    assert!(client.reply().await.unwrap().starts_with("451 4.4.2 "));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_mins(3) && waited < Duration::from_mins(5));
    task.await.unwrap().unwrap();
    assert!(spool.list().unwrap().is_empty());
}

#[tokio::test]
async fn starttls_then_auth() {
    let (_directory, spool) = spool();
    let (server_tls, client_tls) = tls_configs();
    let config = ListenerConfig {
        tls: Some(server_tls),
        ..ListenerConfig::default()
    };
    let policy = TestPolicy {
        auth: signet_smtp::AuthAvailability::AfterTls,
        ..TestPolicy::default()
    };
    let listener = Listener::new(
        config,
        Arc::new(policy),
        Arc::new(SpoolSink::new(spool.clone())),
    );
    let (mut client, task) = greeted(&listener, peer("192.0.2.7")).await;
    let ehlo = client.command("EHLO laptop.example").await;
    assert!(
        ehlo.contains("STARTTLS\r\n") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(
        client
            .command("AUTH PLAIN AHVzZXIAc2VjcmV0")
            .await
            .starts_with("538 5.7.11 ")
    );
    // The pipelined MAIL after STARTTLS is clear text and must be dropped, not run over TLS.
    client
        .send(b"STARTTLS\r\nMAIL FROM:<injected@fabrikam.example>\r\n")
        .await;
    assert_eq!(
        client.reply().await.unwrap(),
        "220 2.0.0 Ready to start TLS\r\n"
    );

    let connector = tokio_rustls::TlsConnector::from(client_tls);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, client.into_inner()).await.unwrap();
    let mut client = TestClient::new(tls);
    assert!(
        client
            .command("MAIL FROM:<joe@fabrikam.example>")
            .await
            .starts_with("503 5.5.1 ")
    );
    let ehlo = client.command("EHLO laptop.example").await;
    assert!(
        !ehlo.contains("STARTTLS") && ehlo.contains("250 AUTH PLAIN LOGIN\r\n"),
        "{ehlo}"
    );
    assert!(
        client
            .command("AUTH PLAIN AHVzZXIAc2VjcmV0")
            .await
            .starts_with("235 2.7.0 ")
    );
    assert!(
        client
            .command("MAIL FROM:<joe@fabrikam.example>")
            .await
            .starts_with("250 ")
    );
    assert!(
        client
            .command("RCPT TO:<ann@example.net>")
            .await
            .starts_with("250 ")
    );
    assert!(client.command("DATA").await.starts_with("354 "));
    client.send(format!("{MESSAGE}.\r\n").as_bytes()).await;
    assert!(
        client
            .reply()
            .await
            .unwrap()
            .starts_with("250 2.0.0 Ok: queued as ")
    );
    assert_eq!(client.command("QUIT").await, "221 2.0.0 Bye\r\n");
    task.await.unwrap().unwrap();
    let ids = spool.list().unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        spool.envelope(ids[0]).unwrap().sender.unwrap().to_string(),
        "joe@fabrikam.example"
    );
}

/// Issue 14: a client that pipelines commands and never reads the replies was kept for ever,
/// its session blocked in a write without a deadline.
#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_is_closed() {
    let (_directory, spool) = spool();
    let listener = listener(&spool);
    // Small pipes, so the replies back up quickly.
    let (mut client, server) = tokio::io::duplex(1024);
    let task = {
        let listener = listener.clone();
        tokio::spawn(async move { listener.handle(server, peer("10.1.2.3")).await })
    };
    let started = tokio::time::Instant::now();
    let noops = b"NOOP\r\n".repeat(100_000);
    let written = tokio::time::timeout(
        Duration::from_hours(1),
        tokio::io::AsyncWriteExt::write_all(&mut client, &noops),
    )
    .await
    .expect("the server closed the session within the hour");
    assert!(written.is_err(), "the server stopped reading: it is gone");
    assert!(started.elapsed() >= Duration::from_mins(5));
    let ended = task.await.unwrap();
    assert!(
        matches!(&ended, Err(Error::Connection(e)) if e.kind() == std::io::ErrorKind::TimedOut),
        "{ended:?}"
    );
    assert_eq!(listener.config().counters.snapshot().timed_out, 1);
}

/// Issue 14: a client sending a byte every 10 s (each read well within its deadline) was kept
/// for as long as it liked; the message as a whole now has `data_timeout`.
#[tokio::test(start_paused = true)]
async fn a_trickled_message_is_cut_off_at_the_data_timeout() {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let (_directory, spool) = spool();
    let listener = listener(&spool);
    let (mut client, task) = greeted(&listener, peer("10.1.2.3")).await;
    client
        .send(b"EHLO r\r\nMAIL FROM:<joe@example.com>\r\nRCPT TO:<a@example.net>\r\nDATA\r\n")
        .await;
    assert_eq!(client.codes(4).await, [250, 250, 250, 354]);
    let started = tokio::time::Instant::now();
    let (read, mut write) = tokio::io::split(client.into_inner());
    let trickle = tokio::spawn(async move {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_secs(10)).await;
            if write.write_all(b"x").await.is_err() {
                return;
            }
        }
    });
    let mut reply = String::new();
    tokio::io::BufReader::new(read)
        .read_line(&mut reply)
        .await
        .unwrap();
    assert!(reply.starts_with("451 4.4.2 "), "{reply}");
    let waited = started.elapsed();
    let data_timeout = ListenerConfig::default().data_timeout;
    assert!(waited >= data_timeout && waited < data_timeout + Duration::from_mins(1));
    task.await.unwrap().unwrap();
    trickle.abort();
    assert!(spool.list().unwrap().is_empty());
    let counted = listener.config().counters.snapshot();
    assert_eq!(counted.timed_out, 1, "{counted}");
}

#[tokio::test]
async fn sessions_in_all_are_limited() {
    let (_directory, spool) = spool();
    let config = ListenerConfig {
        max_connections: 2,
        ..ListenerConfig::default()
    };
    let listener = listener_with(config, &spool);
    let (mut first, first_task) = greeted(&listener, peer("10.1.2.3")).await;
    let (mut second, second_task) = greeted(&listener, peer("10.4.5.6")).await;
    let (mut third, third_task) = connect(&listener, peer("10.7.8.9"));
    assert_eq!(
        third.reply().await.unwrap(),
        "421 4.7.0 Too many connections, try again later\r\n"
    );
    assert_eq!(third.reply().await, None);
    third_task.await.unwrap().unwrap();
    first.command("QUIT").await;
    first_task.await.unwrap().unwrap();
    let (mut fourth, fourth_task) = greeted(&listener, peer("10.7.8.9")).await;
    for (client, task) in [(&mut second, second_task), (&mut fourth, fourth_task)] {
        client.command("QUIT").await;
        task.await.unwrap().unwrap();
    }
    assert_eq!(listener.config().counters.snapshot().turned_away, 1);
}

/// Failed AUTH slows down (1 s, 2 s, ...) and locks the login after `max_failures`: then even
/// the right password gets the answer a wrong one gets, until the lock-out is over. An unknown
/// login gets that answer too. Time is paused, so the delays cost nothing.
#[tokio::test(start_paused = true)]
async fn auth_failures_slow_down_then_lock_the_login() {
    let (_directory, spool) = spool();
    let config = ListenerConfig {
        auth_throttle: signet_smtp::ThrottleConfig {
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(4),
            max_failures: 3,
            lockout: Duration::from_mins(1),
            max_entries: 100,
        },
        ..ListenerConfig::default()
    };
    let listener = listener_with(config, &spool);
    let (mut client, task) = greeted(&listener, peer("192.0.2.7")).await;
    client.command("EHLO laptop.example").await;
    let refused = "535 5.7.8 Authentication credentials invalid\r\n";
    let wrong = "AUTH PLAIN AHVzZXIAd3Jvbmc="; // "\0user\0wrong"
    let right = "AUTH PLAIN AHVzZXIAc2VjcmV0"; // "\0user\0secret"
    let started = tokio::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(client.command(wrong).await, refused);
    }
    // 1 + 2 + 4 seconds held back.
    assert!(started.elapsed() >= Duration::from_secs(7));
    assert_eq!(listener.config().counters.snapshot().lockouts, 1);
    assert_eq!(client.command(right).await, refused, "locked");
    // "\0nobody\0secret": no such login, the same answer.
    assert_eq!(
        client.command("AUTH PLAIN AG5vYm9keQBzZWNyZXQ=").await,
        refused
    );
    client.command("QUIT").await;
    task.await.unwrap().unwrap();

    // Another session, after the lock-out: the right password works again.
    tokio::time::sleep(Duration::from_mins(1)).await;
    let (mut client, task) = greeted(&listener, peer("192.0.2.7")).await;
    client.command("EHLO laptop.example").await;
    assert!(client.command(right).await.starts_with("235 2.7.0 "));
    client.command("QUIT").await;
    task.await.unwrap().unwrap();
}

/// A sink that cannot store (a full disk): the client gets its 451, and the refusal is counted
/// as one, not as an accepted message.
#[tokio::test]
async fn a_sink_failure_is_counted_as_a_refusal() {
    struct FullDisk;
    impl signet_smtp::Sink for FullDisk {
        async fn message(
            &self,
            _: &signet_smtp::Client,
            _: signet_smtp::ReceivedMessage,
        ) -> Result<signet_smtp::QueueId, signet_smtp::Reply> {
            Err(signet_smtp::Reply::new(
                451,
                [4, 3, 0],
                "Temporary local problem",
            ))
        }
    }
    let listener = Listener::new(
        ListenerConfig::default(),
        Arc::new(TestPolicy::default()),
        Arc::new(FullDisk),
    );
    let (client, server) = tokio::io::duplex(64 * 1024);
    let task = {
        let listener = listener.clone();
        tokio::spawn(async move { listener.handle(server, peer("10.1.2.3")).await })
    };
    let mut client = TestClient::new(client);
    client.reply().await.unwrap();
    client
        .send(b"EHLO r\r\nMAIL FROM:<joe@example.com>\r\nRCPT TO:<a@example.net>\r\nDATA\r\n")
        .await;
    assert_eq!(client.codes(4).await, [250, 250, 250, 354]);
    client.send(format!("{MESSAGE}.\r\n").as_bytes()).await;
    assert!(client.reply().await.unwrap().starts_with("451 4.3.0 "));
    client.command("QUIT").await;
    task.await.unwrap().unwrap();
    let counted = listener.config().counters.snapshot();
    assert_eq!((counted.accepted, counted.tempfailed), (0, 1), "{counted}");
}
