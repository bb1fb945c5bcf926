//! The listener's limits over real loopback sockets (issue 14): clients that pipeline NOOPs and
//! never read, idle clients, a message trickled in a byte at a time, and more sessions than
//! `max_connections`, while a normal client goes on being served.
//!
//! The attackers come from 40 loopback addresses (127.1.0.0/16), 25 from each, under the
//! 50-per-address cap; the normal client from 127.0.0.1. Timeouts are seconds here, not the
//! 5 and 10 minutes of the defaults.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{TestPolicy, spool};
use signet_smtp::{Listener, ListenerConfig, SpoolSink};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// A listener on an ephemeral loopback port, serving in the background.
fn serve(config: ListenerConfig) -> (SocketAddr, Arc<signet_smtp::Counters>, tempfile::TempDir) {
    let (directory, spool) = spool();
    let counters = config.counters.clone();
    let listener = Listener::new(
        config,
        Arc::new(TestPolicy {
            relay_addresses: vec!["127.0.0.1".parse().unwrap()],
            ..TestPolicy::default()
        }),
        Arc::new(SpoolSink::new(spool)),
    );
    // Small buffers on the listening socket (accepted ones inherit them), so a client that does
    // not read blocks the server's writes after kilobytes rather than megabytes.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(4096).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let socket = socket.listen(1024).unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move { listener.serve(socket).await });
    (address, counters, directory)
}

/// A connection from `from`, with small socket buffers so that unread replies back up soon.
async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_send_buffer_size(4096).unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// The address of attacker `n`: 25 per address.
fn attacker_address(n: usize) -> IpAddr {
    let n = u32::try_from(n / 25).unwrap();
    IpAddr::from([
        127,
        1,
        u8::try_from(n / 200).unwrap(),
        u8::try_from(n % 200 + 1).unwrap(),
    ])
}

/// One normal relay session, from greeting to QUIT; returns the replies' codes.
async fn normal_session(server: SocketAddr) -> Vec<u16> {
    let stream = TcpStream::connect(server).await.unwrap();
    let mut stream = BufReader::new(stream);
    let mut codes = Vec::new();
    let reply = async |stream: &mut BufReader<TcpStream>| loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap() == 0 {
            return 0;
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return line[..3].parse::<u16>().unwrap();
        }
    };
    codes.push(reply(&mut stream).await);
    for command in [
        "EHLO normal.example\r\n",
        "MAIL FROM:<joe@example.com>\r\n",
        "RCPT TO:<ann@example.net>\r\n",
        "DATA\r\n",
        "From: joe@example.com\r\nSubject: hi\r\n\r\nHi.\r\n.\r\n",
        "QUIT\r\n",
    ] {
        stream
            .get_mut()
            .write_all(command.as_bytes())
            .await
            .unwrap();
        codes.push(reply(&mut stream).await);
    }
    codes
}

/// Pipelines NOOPs and never reads, until the server closes the connection.
async fn noop_flood(mut stream: TcpStream) -> usize {
    let noops = b"NOOP\r\n".repeat(1000);
    let mut sent = 0;
    loop {
        if stream.write_all(&noops).await.is_err() {
            return sent;
        }
        sent += noops.len();
    }
}

/// Says nothing and reads what comes, until the server closes the connection.
async fn idle(mut stream: TcpStream) -> Vec<u8> {
    let mut heard = Vec::new();
    let _ = stream.read_to_end(&mut heard).await;
    heard
}

/// The soak of issue 14: 1,000 connections flooding NOOPs without reading and 200 idle ones,
/// while a normal client keeps sending mail. Every attacker must be closed within (a generous
/// bound on) its deadline, and the normal client served all along, each session well before
/// any attacker's deadline and within a second (the test prints the slowest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attackers_are_closed_while_a_normal_client_is_served() {
    const ATTACKERS: usize = 1200;
    const FLOODERS: usize = 1000;
    let timeout = Duration::from_secs(5);
    let config = ListenerConfig {
        command_timeout: timeout,
        max_connections: 1300,
        ..ListenerConfig::default()
    };
    let (server, counters, _spool) = serve(config);

    let started = Instant::now();
    let mut attackers = Vec::new();
    for n in 0..ATTACKERS {
        let stream = connect_from(attacker_address(n), server).await;
        attackers.push(tokio::spawn(async move {
            let connected = Instant::now();
            let sent = if n < FLOODERS {
                noop_flood(stream).await
            } else {
                let heard = idle(stream).await;
                let heard = String::from_utf8_lossy(&heard);
                assert!(heard.contains("421 4.4.2 "), "{heard}");
                0
            };
            (connected.elapsed(), sent)
        }));
    }
    eprintln!("{ATTACKERS} attackers connected in {:?}", started.elapsed());

    // Meanwhile the normal client sends mail, session after session.
    let mut slowest = Duration::ZERO;
    let mut sessions = 0;
    while attackers.iter().any(|a| !a.is_finished()) && started.elapsed() < 10 * timeout {
        let began = Instant::now();
        // Served within a second, session after session (a bound on waiting: the sessions take
        // milliseconds).
        let codes = tokio::time::timeout(Duration::from_secs(1), normal_session(server))
            .await
            .expect("the normal client is served within 1 s while the attack goes on");
        assert_eq!(codes, [220, 250, 250, 250, 354, 250, 221]);
        slowest = slowest.max(began.elapsed());
        sessions += 1;
    }
    eprintln!("{sessions} normal sessions during the attack, the slowest took {slowest:?}");

    // Every attacker was closed, each within a generous bound on its deadline (the flooders
    // need a moment to fill the buffers before the write deadline starts).
    let (mut longest, mut most_sent) = (Duration::ZERO, 0);
    for attacker in attackers {
        let (held, sent) = tokio::time::timeout(10 * timeout, attacker)
            .await
            .expect("every attacking connection is closed")
            .unwrap();
        longest = longest.max(held);
        most_sent = most_sent.max(sent);
    }
    eprintln!(
        "the longest-held attacker was closed after {longest:?}; a flooder sent at most {most_sent} bytes"
    );
    assert!(longest < 3 * timeout, "held for {longest:?}");
    let counted = counters.snapshot();
    assert!(
        counted.timed_out >= u64::try_from(ATTACKERS).unwrap(),
        "{counted}"
    );
}

/// More sessions than `max_connections`: the next one hears `421 4.7.0` and is closed, and a
/// place frees up when a session ends.
#[tokio::test]
async fn beyond_max_connections_a_client_gets_421() {
    let config = ListenerConfig {
        max_connections: 3,
        ..ListenerConfig::default()
    };
    let (server, counters, _spool) = serve(config);
    let mut held = Vec::new();
    for n in 0..3 {
        let mut stream = connect_from(attacker_address(n * 25), server).await;
        let mut greeting = [0; 4];
        stream.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting, b"220 ");
        held.push(stream);
    }
    let heard = idle(TcpStream::connect(server).await.unwrap()).await;
    assert_eq!(
        String::from_utf8_lossy(&heard),
        "421 4.7.0 Too many connections, try again later\r\n"
    );
    drop(held.pop());
    // The server notices the closed session soon; the normal client gets in then.
    let codes = loop {
        let codes = normal_session(server).await;
        if codes[0] == 220 {
            break codes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(codes, [220, 250, 250, 250, 354, 250, 221]);
    assert!(counters.snapshot().turned_away >= 1);
}

/// A message trickled a byte a second gets `451 4.4.2` at `data_timeout`, though each byte
/// arrives well within the read deadline.
#[tokio::test]
async fn a_trickled_message_gets_451_at_the_data_timeout() {
    let config = ListenerConfig {
        command_timeout: Duration::from_secs(10),
        data_timeout: Duration::from_secs(3),
        ..ListenerConfig::default()
    };
    let (server, counters, _spool) = serve(config);
    let stream = TcpStream::connect(server).await.unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(b"EHLO r\r\nMAIL FROM:<joe@example.com>\r\nRCPT TO:<a@example.net>\r\nDATA\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if write.write_all(b"x").await.is_err() {
                return;
            }
        }
    });
    let mut read = BufReader::new(read);
    let mut last = String::new();
    let mut line = String::new();
    while read.read_line(&mut line).await.unwrap() > 0 {
        last = std::mem::take(&mut line);
    }
    assert!(last.starts_with("451 4.4.2 "), "{last}");
    assert!(!trickle.is_finished(), "closed before the trickle ended");
    trickle.abort();
    assert_eq!(counters.snapshot().timed_out, 1);
}
