//! Delivery to a smart host that wants STARTTLS and AUTH: the worker's client against signet's
//! own listener as the next hop (certificate from rcgen, logins from the test policy), over
//! loopback. The login goes out only over TLS; a certificate that does not verify, or a refused
//! login, keeps the message from being sent.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{TestPolicy, spool, tls_configs};
use signet_smtp::client::{NextHop, NextHopTls};
use signet_smtp::delivery::{DeliveryConfig, Route, attempt};
use signet_smtp::{AuthAvailability, Envelope, Listener, ListenerConfig, Spool, SpoolSink};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use zeroize::Zeroizing;

const MESSAGE: &[u8] = b"From: joe@fabrikam.example\r\nSubject: over TLS\r\n\r\nbody\r\n";

/// The smart host: offers STARTTLS when `tls` is set, and AUTH only after it.
async fn smart_host(
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (u16, Arc<Spool>, tempfile::TempDir) {
    let (directory, received) = spool();
    let listener = Listener::new(
        ListenerConfig {
            tls,
            ..ListenerConfig::default()
        },
        Arc::new(TestPolicy {
            auth: AuthAvailability::AfterTls,
            ..TestPolicy::default()
        }),
        Arc::new(SpoolSink::new(received.clone())),
    );
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move { listener.serve(socket).await });
    (port, received, directory)
}

fn config(port: u16, tls: NextHopTls, password: &str) -> DeliveryConfig {
    DeliveryConfig {
        route: Route::SmartHost(NextHop {
            address: format!("localhost:{port}"),
            name: None,
            tls,
            login: Some(("user".into(), Zeroizing::new(password.into()))),
        }),
        hostname: "signet.test".into(),
        queue_lifetime: Duration::from_hours(1),
        timeout: Duration::from_secs(5),
        parallel: 1,
        counters: Arc::default(),
        connections: Arc::default(),
    }
}

fn queued(spool: &Spool) -> signet_smtp::QueueId {
    let now = SystemTime::now();
    let envelope = Envelope {
        sender: Some("joe@fabrikam.example".parse().unwrap()),
        recipients: vec!["ann@example.org".parse().unwrap()],
        tenant: "fabrikam".into(),
        received_at: now,
        attempts: 0,
        next_attempt: now,
        eight_bit_mime: false,
        smtputf8: false,
    };
    spool.store(&envelope, MESSAGE).unwrap()
}

#[tokio::test]
async fn starttls_then_auth_then_the_message() {
    let (server_tls, client_tls) = tls_configs();
    let (port, received, _r) = smart_host(Some(server_tls)).await;
    let (_d, outgoing) = spool();
    let id = queued(&outgoing);
    let config = config(port, NextHopTls::Required(client_tls), "secret");
    attempt(&outgoing, id, &config).await;
    assert!(outgoing.list().unwrap().is_empty(), "delivered and removed");
    let ids = received.list().unwrap();
    assert_eq!(ids.len(), 1);
    let (envelope, data) = received.load(ids[0]).unwrap();
    // The smart host only takes AUTH after TLS, and only this login maps to fabrikam.
    assert_eq!(envelope.tenant, "fabrikam");
    assert_eq!(data, MESSAGE);
    assert_eq!(config.counters.snapshot().delivered, 1);
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_is_not_trusted() {
    let (server_tls, _) = tls_configs();
    let (port, received, _r) = smart_host(Some(server_tls)).await;
    let (_d, outgoing) = spool();
    let id = queued(&outgoing);
    // Required TLS with a client that trusts another CA: no handshake, no login, no message.
    let (_, other_ca) = tls_configs();
    let required = config(port, NextHopTls::Required(other_ca), "secret");
    attempt(&outgoing, id, &required).await;
    assert!(
        received.list().unwrap().is_empty(),
        "an unverified certificate is refused"
    );
    assert_eq!(outgoing.envelope(id).unwrap().attempts, 1, "deferred, kept");
    assert_eq!(required.counters.snapshot().deferred, 1);

    // Opportunistic TLS encrypts to the same host without checking its certificate.
    let opportunistic = config(
        port,
        NextHopTls::Opportunistic(signet_smtp::client::opportunistic_tls().unwrap()),
        "secret",
    );
    attempt(&outgoing, id, &opportunistic).await;
    assert_eq!(received.list().unwrap().len(), 1, "AUTH after TLS worked");
    assert!(outgoing.list().unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_login_bounces_and_a_host_without_tls_never_sees_the_password() {
    let (server_tls, client_tls) = tls_configs();
    let (port, received, _r) = smart_host(Some(server_tls)).await;
    let (_d, outgoing) = spool();
    let id = queued(&outgoing);
    let wrong = config(port, NextHopTls::Required(client_tls.clone()), "guess");
    attempt(&outgoing, id, &wrong).await;
    assert!(received.list().unwrap().is_empty());
    assert_eq!(wrong.counters.snapshot().bounced, 1, "535 is permanent");
    let dsn = outgoing.list().unwrap();
    assert_eq!(dsn.len(), 1, "only the DSN is left");
    assert!(
        String::from_utf8(outgoing.message(dsn[0]).unwrap())
            .unwrap()
            .contains("535 5.7.8")
    );

    // No STARTTLS offered: the login is kept back and the message waits.
    let (plain_port, plain_received, _p) = smart_host(None).await;
    let id = queued(&outgoing);
    let opportunistic = config(plain_port, NextHopTls::Opportunistic(client_tls), "secret");
    attempt(&outgoing, id, &opportunistic).await;
    assert!(plain_received.list().unwrap().is_empty());
    assert_eq!(outgoing.envelope(id).unwrap().attempts, 1, "deferred, kept");
}

/// A smart host that, like Microsoft 365's submission endpoint, offers AUTH LOGIN only: the
/// client must fall back to it, after STARTTLS, and send the user name and password it was given.
#[tokio::test]
async fn auth_login_when_plain_is_not_offered() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (server_tls, client_tls) = tls_configs();
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let logins = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&logins);
    tokio::spawn(async move {
        let (mut stream, _) = socket.accept().await.unwrap();
        stream.write_all(b"220 fake ESMTP\r\n").await.unwrap();
        let mut plain = BufReader::new(&mut stream);
        let mut line = String::new();
        plain.read_line(&mut line).await.unwrap(); // EHLO
        plain
            .get_mut()
            .write_all(b"250-fake\r\n250 STARTTLS\r\n")
            .await
            .unwrap();
        line.clear();
        plain.read_line(&mut line).await.unwrap();
        assert_eq!(line, "STARTTLS\r\n");
        plain
            .get_mut()
            .write_all(b"220 go ahead\r\n")
            .await
            .unwrap();
        let tls = tokio_rustls::TlsAcceptor::from(server_tls)
            .accept(stream)
            .await
            .unwrap();
        let mut tls = BufReader::new(tls);
        let decode = |l: &str| {
            use base64::Engine as _;
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(l.trim())
                    .unwrap(),
            )
            .unwrap()
        };
        loop {
            let mut line = String::new();
            if tls.read_line(&mut line).await.unwrap() == 0 {
                return;
            }
            let reply: &[u8] = match line.trim_end() {
                l if l.starts_with("EHLO") => b"250-fake\r\n250 AUTH LOGIN\r\n",
                "AUTH LOGIN" => {
                    tls.get_mut()
                        .write_all(b"334 VXNlcm5hbWU6\r\n")
                        .await
                        .unwrap();
                    let mut user = String::new();
                    tls.read_line(&mut user).await.unwrap();
                    tls.get_mut()
                        .write_all(b"334 UGFzc3dvcmQ6\r\n")
                        .await
                        .unwrap();
                    let mut password = String::new();
                    tls.read_line(&mut password).await.unwrap();
                    seen.lock()
                        .unwrap()
                        .push(format!("{}:{}", decode(&user), decode(&password)));
                    b"235 2.7.0 Authentication successful\r\n"
                }
                "DATA" => {
                    tls.get_mut().write_all(b"354 go\r\n").await.unwrap();
                    loop {
                        let mut data = String::new();
                        tls.read_line(&mut data).await.unwrap();
                        if data == ".\r\n" {
                            break;
                        }
                    }
                    b"250 2.0.0 queued\r\n"
                }
                "QUIT" => b"221 bye\r\n",
                _ => b"250 ok\r\n",
            };
            tls.get_mut().write_all(reply).await.unwrap();
        }
    });
    let (_d, outgoing) = spool();
    let id = queued(&outgoing);
    let config = config(port, NextHopTls::Required(client_tls), "secret");
    attempt(&outgoing, id, &config).await;
    assert_eq!(config.counters.snapshot().delivered, 1);
    assert_eq!(*logins.lock().unwrap(), ["user:secret"]);
}
