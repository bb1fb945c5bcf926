//! End to end over loopback with an SMTP client nobody here wrote: swaks (Debian package
//! `swaks`, installed by `.ci/setup`) delivers into a listener whose sink spools.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Output};
use std::sync::Arc;

use common::{TestPolicy, spool};
use signet_smtp::{Listener, ListenerConfig, Spool, SpoolSink};
use tokio::net::TcpListener;

const MESSAGE: &str = "From: joe@example.com\nTo: ann@example.net\nSubject: swaks test\n\n\
                       Hello from swaks.\n.leading dot\n";

/// Serves `policy` on a loopback port, in the background.
async fn serve(policy: TestPolicy, spool: &Arc<Spool>) -> u16 {
    let listener = Listener::new(
        ListenerConfig::default(),
        Arc::new(policy),
        Arc::new(SpoolSink::new(spool.clone())),
    );
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move { listener.serve(socket).await });
    port
}

async fn swaks(port: u16, extra: &[&str]) -> (Output, String) {
    let directory = tempfile::tempdir().unwrap();
    let message = directory.path().join("message.eml");
    std::fs::write(&message, MESSAGE).unwrap();
    let mut arguments: Vec<String> = [
        "--server",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--helo",
        "mail.example.com",
        "--from",
        "joe@example.com",
        "--to",
        "ann@example.net,bob@example.org",
        "--data",
        &format!("@{}", message.display()),
        "--timeout",
        "20",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    arguments.extend(extra.iter().map(ToString::to_string));
    let output = tokio::task::spawn_blocking(move || {
        Command::new("swaks")
            .args(&arguments)
            .output()
            .expect("swaks is not installed: run .ci/setup (Debian package swaks)")
    })
    .await
    .unwrap();
    let transcript = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output, transcript)
}

fn relay_policy() -> TestPolicy {
    TestPolicy {
        relay_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        ..TestPolicy::default()
    }
}

fn expected_data() -> Vec<u8> {
    // swaks sends CRLF line endings, dot-stuffs the ".leading dot" line (we unstuff it) and
    // ends the data with "\r\n.\r\n" after the file's own last line break, which adds one
    // empty line.
    (MESSAGE.replace('\n', "\r\n") + "\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_relays_into_the_spool() {
    let (_directory, spool) = spool();
    let port = serve(relay_policy(), &spool).await;
    for extra in [&[][..], &["--pipeline"][..]] {
        let (output, transcript) = swaks(port, extra).await;
        assert!(
            output.status.success(),
            "swaks {extra:?} failed:\n{transcript}"
        );
        assert!(
            transcript.contains("<-  250 2.0.0 Ok: queued as "),
            "{transcript}"
        );
    }
    let ids = spool.list().unwrap();
    assert_eq!(ids.len(), 2);
    for id in ids {
        let (envelope, data) = spool.load(id).unwrap();
        assert_eq!(envelope.tenant, "contoso");
        assert_eq!(envelope.sender.unwrap().to_string(), "joe@example.com");
        let recipients: Vec<String> = envelope
            .recipients
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(recipients, ["ann@example.net", "bob@example.org"]);
        assert_eq!(
            String::from_utf8_lossy(&data),
            String::from_utf8_lossy(&expected_data())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_authenticates() {
    let (_directory, spool) = spool();
    let port = serve(TestPolicy::default(), &spool).await;
    for mechanism in ["PLAIN", "LOGIN"] {
        let (output, transcript) = swaks(
            port,
            &[
                "--auth",
                mechanism,
                "--auth-user",
                "user",
                "--auth-password",
                "secret",
                "--from",
                "joe@fabrikam.example",
            ],
        )
        .await;
        assert!(
            output.status.success(),
            "swaks AUTH {mechanism} failed:\n{transcript}"
        );
        assert!(
            transcript.contains("235 2.7.0 Authentication successful"),
            "{transcript}"
        );
    }
    let ids = spool.list().unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(spool.envelope(ids[0]).unwrap().tenant, "fabrikam");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_until_stops_accepting() {
    let (_directory, spool) = spool();
    let mut config = ListenerConfig::default();
    config.session.hostname = "stopping.listener.test".into();
    let listener = Listener::new(
        config,
        Arc::new(relay_policy()),
        Arc::new(SpoolSink::new(spool.clone())),
    );
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        listener
            .serve_until(socket, async {
                let _ = stopped.await;
            })
            .await;
    });
    let (output, transcript) = swaks(port, &[]).await;
    assert!(output.status.success(), "{transcript}");
    stop.send(()).unwrap();
    server.await.unwrap();
    // The socket is closed with the listener: it greets nobody any more. (The port itself may
    // already serve another test's listener, or a connect may meet itself on loopback, so what
    // is checked is that no greeting of *this* listener arrives.)
    if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        use tokio::io::AsyncReadExt as _;
        let mut greeting = vec![0; 512];
        let read = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            stream.read(&mut greeting),
        )
        .await;
        if let Ok(Ok(n)) = read {
            let greeting = String::from_utf8_lossy(&greeting[..n]);
            assert!(!greeting.contains("stopping.listener.test"), "{greeting}");
        }
    }
    assert_eq!(spool.list().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_is_not_relayed_without_a_tenant() {
    let (_directory, spool) = spool();
    let port = serve(TestPolicy::default(), &spool).await;
    let (output, transcript) = swaks(port, &[]).await;
    assert!(!output.status.success(), "{transcript}");
    assert!(
        transcript.contains("<** 550 5.7.1 Relaying denied"),
        "{transcript}"
    );
    assert!(spool.list().unwrap().is_empty());
}
