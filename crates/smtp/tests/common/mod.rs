//! A test policy and client helpers shared by the listener tests.

#![allow(dead_code)] // each test binary uses part of it

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use signet_smtp::{
    Admission, AuthAvailability, Client, Credentials, MailFrom, Policy, RcptTo, Reply, Spool,
};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};

/// Clients in 10.0.0.0/8 are relayed for tenant `contoso` (sending from `example.com`);
/// 203.0.113.0/24 is refused outright; everyone else may AUTH as `user`/`secret`, tenant
/// `fabrikam` (sending from `fabrikam.example`).
#[derive(Debug)]
pub struct TestPolicy {
    /// Whether AUTH is offered to clients outside the relay network.
    pub auth: AuthAvailability,
    /// Addresses treated like the relay network (loopback, for swaks).
    pub relay_addresses: Vec<IpAddr>,
}

impl Default for TestPolicy {
    fn default() -> Self {
        Self {
            auth: AuthAvailability::Always,
            relay_addresses: Vec::new(),
        }
    }
}

impl Policy for TestPolicy {
    async fn connect(&self, client: &Client) -> Result<Admission, Reply> {
        let ip = client.peer.ip();
        match ip {
            IpAddr::V4(v4) if v4.octets()[..3] == [203, 0, 113] => {
                Err(Reply::new(554, [5, 7, 1], "Access denied"))
            }
            IpAddr::V4(v4) if v4.octets()[0] == 10 || self.relay_addresses.contains(&ip) => {
                Ok(Admission {
                    tenant: Some("contoso".into()),
                    auth: AuthAvailability::Disabled,
                })
            }
            _ => Ok(Admission {
                tenant: None,
                auth: self.auth,
            }),
        }
    }

    async fn authenticate(&self, _: &Client, credentials: &Credentials) -> Result<String, Reply> {
        if credentials.username == "user" && credentials.password.as_str() == "secret" {
            Ok("fabrikam".into())
        } else {
            Err(Reply::new(
                535,
                [5, 7, 8],
                "Authentication credentials invalid",
            ))
        }
    }

    async fn sender(&self, client: &Client, sender: &MailFrom) -> Result<(), Reply> {
        let accepted = match client.tenant.as_deref() {
            // No tenant: refused at RCPT, as the gateway does.
            None => return Ok(()),
            Some("contoso") => "example.com",
            Some(_) => "fabrikam.example",
        };
        let domain = sender.address.as_ref().map(|a| a.domain().as_str());
        if domain == Some(accepted) {
            Ok(())
        } else {
            Err(Reply::new(
                550,
                [5, 7, 1],
                "Sender domain not accepted for this tenant",
            ))
        }
    }

    async fn recipient(&self, client: &Client, _: &MailFrom, _: &RcptTo) -> Result<(), Reply> {
        if client.tenant.is_some() {
            Ok(())
        } else {
            Err(Reply::new(550, [5, 7, 1], "Relaying denied"))
        }
    }
}

pub fn peer(address: &str) -> SocketAddr {
    SocketAddr::new(address.parse().unwrap(), 40_000)
}

pub fn spool() -> (tempfile::TempDir, Arc<Spool>) {
    let directory = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(directory.path().join("spool")).unwrap());
    (directory, spool)
}

/// The client end of a session: writes commands, reads whole (multi-line) replies.
pub struct TestClient<T> {
    stream: BufReader<T>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> TestClient<T> {
    pub fn new(stream: T) -> Self {
        Self {
            stream: BufReader::new(stream),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The next reply, all its lines; `None` at end of stream.
    pub async fn reply(&mut self) -> Option<String> {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await.unwrap() == 0 {
                assert!(reply.is_empty(), "stream ended inside a reply: {reply:?}");
                return None;
            }
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(reply);
            }
        }
    }

    /// Sends `command` and returns the reply.
    pub async fn command(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes()).await;
        self.reply().await.expect("a reply")
    }

    /// The codes of the next `count` replies.
    pub async fn codes(&mut self, count: usize) -> Vec<u16> {
        let mut codes = Vec::new();
        for _ in 0..count {
            let reply = self.reply().await.expect("a reply");
            codes.push(reply[..3].parse().unwrap());
        }
        codes
    }

    pub fn into_inner(self) -> T {
        self.stream.into_inner()
    }
}

/// A self-signed certificate for `localhost`: the server's configuration, and a client's that
/// trusts exactly it.
pub fn tls_configs() -> (
    Arc<tokio_rustls::rustls::ServerConfig>,
    Arc<tokio_rustls::rustls::ClientConfig>,
) {
    use tokio_rustls::rustls;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let certificate = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}
