//! The sending side: one SMTP transaction to a next hop (a smart host), reporting what happened
//! to each recipient. STARTTLS when the next hop offers it (or always, verified, when required),
//! and AUTH PLAIN with the configured login — only ever over TLS.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use zeroize::Zeroizing;

use crate::address::Mailbox;

/// How to reach the next hop.
#[derive(Clone)]
pub struct NextHop {
    /// `host:port`, or `ip:port` when [`NextHop::name`] is set.
    pub address: String,
    /// The host's name (for TLS) when `address` is an IP address: an MX host.
    pub name: Option<String>,
    pub tls: NextHopTls,
    /// A login for AUTH PLAIN, sent only once TLS is up.
    pub login: Option<(String, Zeroizing<String>)>,
}

/// TLS towards the next hop.
#[derive(Clone, Debug)]
pub enum NextHopTls {
    /// Plain SMTP (a next hop on the same machine or network).
    Off,
    /// STARTTLS when offered, without checking the certificate (as Postfix's `may`): protects
    /// against listening, not against an active attacker.
    Opportunistic(Arc<ClientConfig>),
    /// STARTTLS or no delivery, and the certificate must verify for the host name (Postfix's
    /// `secure`).
    Required(Arc<ClientConfig>),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider())
}

/// A client configuration for [`NextHopTls::Required`]: the chain must lead to one of `roots`
/// and name the host.
pub fn verified_tls(
    roots: RootCertStore,
) -> Result<Arc<ClientConfig>, tokio_rustls::rustls::Error> {
    Ok(Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// A client configuration for [`NextHopTls::Opportunistic`]: encrypts without checking who
/// answers.
pub fn opportunistic_tls() -> Result<Arc<ClientConfig>, tokio_rustls::rustls::Error> {
    let provider = provider();
    Ok(Arc::new(
        ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    ))
}

/// Accepts any certificate, but still checks that the server holds its key (the handshake
/// signatures), as opportunistic TLS does.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl NextHop {
    /// Plain SMTP to `address`, no login.
    pub fn plain(address: impl Into<String>) -> NextHop {
        NextHop {
            address: address.into(),
            name: None,
            tls: NextHopTls::Off,
            login: None,
        }
    }

    /// Which idle sessions may carry mail for this next hop.
    fn pool_key(&self) -> String {
        format!(
            "{} {} {}",
            self.address,
            self.name.as_deref().unwrap_or(""),
            self.login.as_ref().map_or("", |(user, _)| user.as_str())
        )
    }

    fn host(&self) -> &str {
        if let Some(name) = &self.name {
            return name.trim_end_matches('.');
        }
        self.address
            .rsplit_once(':')
            .map_or(self.address.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']')
    }
}

impl std::fmt::Debug for NextHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tls = match self.tls {
            NextHopTls::Off => "off",
            NextHopTls::Opportunistic(_) => "opportunistic",
            NextHopTls::Required(_) => "required",
        };
        f.debug_struct("NextHop")
            .field("address", &self.address)
            .field("name", &self.name)
            .field("tls", &tls)
            .field("login", &self.login.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl std::fmt::Display for NextHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.address)
    }
}

/// What a delivery attempt did for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientOutcome {
    Delivered,
    /// A 4xx or a connection problem: try again later.
    Deferred(String),
    /// A 5xx: give up on this recipient and tell the sender.
    Failed(String),
}

/// Sends `message` from `sender` to `recipients` through `next_hop`.
/// Every recipient gets an outcome; a connection-level problem defers them all.
#[allow(clippy::too_many_arguments)] // one SMTP transaction's worth of facts
pub async fn send(
    next_hop: &NextHop,
    pool: &ConnectionPool,
    helo: &str,
    sender: Option<&Mailbox>,
    recipients: &[Mailbox],
    message: &[u8],
    eight_bit: bool,
    timeout: Duration,
) -> Vec<(Mailbox, RecipientOutcome)> {
    match tokio::time::timeout(
        timeout * 4,
        transaction(
            next_hop, pool, helo, sender, recipients, message, eight_bit, timeout,
        ),
    )
    .await
    {
        Ok(Ok(outcomes)) => outcomes,
        Ok(Err(why)) => all(recipients, &why),
        Err(_) => all(
            recipients,
            &Failure::Temporary(format!("{}: transaction timed out", next_hop.address)),
        ),
    }
}

/// A failure of the whole transaction.
enum Failure {
    Temporary(String),
    Permanent(String),
    /// A kept session turned out closed before anything was sent: open a fresh one.
    Stale(String),
}

fn all(recipients: &[Mailbox], why: &Failure) -> Vec<(Mailbox, RecipientOutcome)> {
    recipients
        .iter()
        .map(|r| {
            let outcome = match why {
                Failure::Temporary(text) | Failure::Stale(text) => {
                    RecipientOutcome::Deferred(text.clone())
                }
                Failure::Permanent(text) => RecipientOutcome::Failed(text.clone()),
            };
            (r.clone(), outcome)
        })
        .collect()
}

struct Connection<S> {
    stream: BufReader<S>,
    timeout: Duration,
    peer: String,
}

/// A reply: its code and its text (lines joined).
struct Reply {
    code: u16,
    text: String,
}

impl Reply {
    fn failure(&self, peer: &str, during: &str) -> Failure {
        let text = format!("{peer} answered {during} with {} {}", self.code, self.text);
        if self.code >= 500 {
            Failure::Permanent(text)
        } else {
            Failure::Temporary(text)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn transaction(
    next_hop: &NextHop,
    pool: &ConnectionPool,
    helo: &str,
    sender: Option<&Mailbox>,
    recipients: &[Mailbox],
    message: &[u8],
    eight_bit: bool,
    timeout: Duration,
) -> Result<Vec<(Mailbox, RecipientOutcome)>, Failure> {
    let key = next_hop.pool_key();
    if let Some(mut session) = pool.take(&key) {
        match session
            .connection
            .mail(
                &session.extensions,
                true,
                sender,
                recipients,
                message,
                eight_bit,
            )
            .await
        {
            Ok(outcomes) => {
                pool.put(key, session);
                return Ok(outcomes);
            }
            Err(Failure::Stale(_)) => {} // closed while it waited: a fresh session below
            Err(other) => return Err(other),
        }
    }
    let mut session = open(next_hop, helo, timeout).await?;
    let outcomes = session
        .connection
        .mail(
            &session.extensions,
            false,
            sender,
            recipients,
            message,
            eight_bit,
        )
        .await?;
    pool.put(key, session);
    Ok(outcomes)
}

/// A transport to a next hop: TCP, or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A session ready for a transaction: greeted, EHLO said, TLS and AUTH done.
struct Session {
    connection: Connection<Box<dyn Stream>>,
    extensions: String,
}

/// Connects, says EHLO, does STARTTLS (as `next_hop.tls` says) and AUTH.
async fn open(next_hop: &NextHop, helo: &str, timeout: Duration) -> Result<Session, Failure> {
    let address = next_hop.address.as_str();
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| Failure::Temporary(format!("{address}: connection timed out")))?
        .map_err(|e| Failure::Temporary(format!("{address}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let mut c = Connection {
        stream: BufReader::new(Box::new(stream) as Box<dyn Stream>),
        timeout,
        peer: address.to_string(),
    };
    let greeting = c.reply().await?;
    if greeting.code != 220 {
        return Err(greeting.failure(address, "the connection"));
    }
    let extensions = c.hello(helo).await?;
    let config = match &next_hop.tls {
        NextHopTls::Required(config) => Some(config),
        NextHopTls::Opportunistic(config) if offers(&extensions, "STARTTLS") => Some(config),
        NextHopTls::Opportunistic(_) | NextHopTls::Off => None,
    };
    let Some(config) = config else {
        if next_hop.login.is_some() {
            return Err(Failure::Temporary(format!(
                "{address} offers no STARTTLS: the login is never sent in the clear"
            )));
        }
        return Ok(Session {
            connection: c,
            extensions,
        });
    };
    let reply = c.command("STARTTLS").await?;
    if reply.code != 220 {
        return Err(reply.failure(address, "STARTTLS"));
    }
    let name = ServerName::try_from(next_hop.host().to_string())
        .map_err(|_| Failure::Permanent(format!("{address}: not a host name for TLS")))?;
    // Nothing may be buffered past the 220: a server that sent more is not talking TLS yet.
    if !c.stream.buffer().is_empty() {
        return Err(Failure::Temporary(format!(
            "{address} sent data after its STARTTLS reply"
        )));
    }
    let tls = tokio::time::timeout(
        timeout,
        TlsConnector::from(Arc::clone(config)).connect(name, c.stream.into_inner()),
    )
    .await
    .map_err(|_| Failure::Temporary(format!("{address}: TLS handshake timed out")))?
    .map_err(|e| Failure::Temporary(format!("{address}: TLS handshake failed: {e}")))?;
    let mut c = Connection {
        stream: BufReader::new(Box::new(tls) as Box<dyn Stream>),
        timeout,
        peer: address.to_string(),
    };
    let extensions = c.hello(helo).await?;
    if let Some((user, password)) = &next_hop.login {
        c.authenticate(&extensions, user, password).await?;
    }
    Ok(Session {
        connection: c,
        extensions,
    })
}

/// Sessions to next hops kept open between messages, by next hop (address, TLS name, login):
/// a message to a host that was just delivered to skips the connection, the greeting, EHLO,
/// STARTTLS and AUTH. A session idle for [`IDLE_FOR`] is closed.
#[derive(Default)]
pub struct ConnectionPool {
    idle: std::sync::Mutex<std::collections::HashMap<String, Vec<(Instant, Session)>>>,
}

/// How long a session may wait for the next message (Postfix keeps its cached ones 2 s).
const IDLE_FOR: Duration = Duration::from_secs(5);
/// Most idle sessions kept per next hop.
const IDLE_PER_HOP: usize = 32;

impl ConnectionPool {
    fn take(&self, key: &str) -> Option<Session> {
        let mut idle = self.lock();
        let sessions = idle.get_mut(key)?;
        let now = Instant::now();
        while let Some((since, session)) = sessions.pop() {
            if now.duration_since(since) < IDLE_FOR {
                return Some(session);
            }
            quit_later(session.connection);
        }
        None
    }

    fn put(&self, key: String, session: Session) {
        let mut idle = self.lock();
        let sessions = idle.entry(key).or_default();
        if sessions.len() < IDLE_PER_HOP {
            sessions.push((Instant::now(), session));
        } else {
            quit_later(session.connection);
        }
    }

    /// Closes the sessions that have waited too long (the delivery worker calls this now and
    /// then, so that an idle gateway holds no connections).
    pub fn close_idle(&self) {
        let now = Instant::now();
        let mut idle = self.lock();
        for sessions in idle.values_mut() {
            let (stale, fresh): (Vec<_>, Vec<_>) = std::mem::take(sessions)
                .into_iter()
                .partition(|(since, _)| now.duration_since(*since) >= IDLE_FOR);
            *sessions = fresh;
            for (_, session) in stale {
                quit_later(session.connection);
            }
        }
        idle.retain(|_, sessions| !sessions.is_empty());
    }

    /// Idle sessions kept now.
    pub fn idle(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Vec<(Instant, Session)>>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnectionPool({} idle)", self.idle())
    }
}

/// Says QUIT and waits for the goodbye off the delivery's path.
fn quit_later<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(mut c: Connection<S>) {
    tokio::spawn(async move {
        let _ = c.command("QUIT").await;
    });
}

/// Whether an EHLO reply (upper-cased, lines joined by spaces) lists `keyword`.
fn offers(extensions: &str, keyword: &str) -> bool {
    extensions.split_whitespace().any(|word| word == keyword)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// EHLO (HELO if refused); the extensions, upper-cased, one per space-separated word group.
    async fn hello(&mut self, helo: &str) -> Result<String, Failure> {
        let ehlo = self.command(&format!("EHLO {helo}")).await?;
        if ehlo.code == 250 {
            return Ok(ehlo.text.to_ascii_uppercase());
        }
        let reply = self.command(&format!("HELO {helo}")).await?;
        if reply.code != 250 {
            return Err(reply.failure(&self.peer, "HELO"));
        }
        Ok(String::new())
    }

    /// AUTH PLAIN (RFC 4616), or LOGIN when that is all the server offers (Microsoft 365's
    /// submission endpoint, for one). A refused login is permanent for the message only if the
    /// server says so (535 is 5xx): a misconfigured password then bounces rather than piling up.
    async fn authenticate(
        &mut self,
        extensions: &str,
        user: &str,
        password: &str,
    ) -> Result<(), Failure> {
        let reply = if offers(extensions, "AUTH") && offers(extensions, "PLAIN") {
            let token = Zeroizing::new(BASE64.encode(format!("\0{user}\0{password}")));
            self.command(&format!("AUTH PLAIN {}", token.as_str()))
                .await?
        } else if offers(extensions, "AUTH") && offers(extensions, "LOGIN") {
            self.login(user, password).await?
        } else {
            return Err(Failure::Temporary(format!(
                "{} offers neither AUTH PLAIN nor AUTH LOGIN",
                self.peer
            )));
        };
        if reply.code == 235 {
            Ok(())
        } else {
            Err(reply.failure(&self.peer, "AUTH"))
        }
    }

    /// The LOGIN exchange: the user name and the password, each after a 334 prompt.
    async fn login(&mut self, user: &str, password: &str) -> Result<Reply, Failure> {
        let mut reply = self.command("AUTH LOGIN").await?;
        for answer in [user, password] {
            if reply.code != 334 {
                return Ok(reply);
            }
            let token = Zeroizing::new(BASE64.encode(answer));
            reply = self.command(token.as_str()).await?;
        }
        Ok(reply)
    }

    /// One transaction: MAIL, RCPT for each recipient, DATA, the message. A reused session
    /// (`reset`) starts with RSET; if that gets no 250 the session is [`Failure::Stale`].
    async fn mail(
        &mut self,
        extensions: &str,
        reset: bool,
        sender: Option<&Mailbox>,
        recipients: &[Mailbox],
        message: &[u8],
        eight_bit: bool,
    ) -> Result<Vec<(Mailbox, RecipientOutcome)>, Failure> {
        let body = if eight_bit && offers(extensions, "8BITMIME") {
            " BODY=8BITMIME"
        } else {
            ""
        };
        // Mailbox's Display quotes the local part where RFC 5321 requires: nothing a client
        // quoted can end the path or add a parameter here.
        let sender = sender.map(ToString::to_string).unwrap_or_default();
        let mail_from = format!("MAIL FROM:<{sender}>{body}");
        let (mail, rcpts, data) = if offers(extensions, "PIPELINING") {
            self.pipelined(reset, &mail_from, recipients).await?
        } else {
            self.lockstep(reset, &mail_from, recipients).await?
        };
        let peer = self.peer.clone();
        if mail.code != 250 {
            return Err(mail.failure(&peer, "MAIL FROM"));
        }
        let mut outcomes: Vec<(Mailbox, RecipientOutcome)> = recipients
            .iter()
            .zip(rcpts)
            .map(|(recipient, reply)| {
                let outcome = match reply.code {
                    250 | 251 => RecipientOutcome::Delivered,
                    _ => match reply.failure(&peer, &format!("RCPT TO:<{recipient}>")) {
                        Failure::Permanent(text) => RecipientOutcome::Failed(text),
                        Failure::Temporary(text) | Failure::Stale(text) => {
                            RecipientOutcome::Deferred(text)
                        }
                    },
                };
                (recipient.clone(), outcome)
            })
            .collect();
        let accepted = outcomes
            .iter()
            .any(|(_, o)| *o == RecipientOutcome::Delivered);
        match data {
            None => return Ok(outcomes),
            Some(data) if !accepted => {
                // RFC 2920 says DATA must then be refused; a server that said 354 anyway gets
                // an empty message, which it has no one to deliver to.
                if data.code == 354 {
                    self.send_data(b"").await?;
                    self.reply().await?;
                }
                return Ok(outcomes);
            }
            Some(data) if data.code != 354 => return Err(data.failure(&peer, "DATA")),
            Some(_) => {}
        }
        self.send_data(message).await?;
        let done = self.reply().await?;
        if done.code != 250 {
            // The message as a whole was refused: no accepted recipient got it.
            let failure = done.failure(&peer, "the end of data");
            for (_, outcome) in &mut outcomes {
                if *outcome == RecipientOutcome::Delivered {
                    *outcome = match &failure {
                        Failure::Permanent(text) => RecipientOutcome::Failed(text.clone()),
                        Failure::Temporary(text) | Failure::Stale(text) => {
                            RecipientOutcome::Deferred(text.clone())
                        }
                    };
                }
            }
        }
        Ok(outcomes)
    }

    /// The envelope in one write (RFC 2920), replies read in order: RSET's (when `reset`),
    /// MAIL's, each RCPT's and DATA's. One round trip instead of one per command.
    async fn pipelined(
        &mut self,
        reset: bool,
        mail_from: &str,
        recipients: &[Mailbox],
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), Failure> {
        let mut batch = String::new();
        if reset {
            batch.push_str("RSET\r\n");
        }
        batch.push_str(mail_from);
        batch.push_str("\r\n");
        for recipient in recipients {
            let _ = write!(batch, "RCPT TO:<{recipient}>\r\n");
        }
        batch.push_str("DATA\r\n");
        let written = self.write(batch.as_bytes()).await;
        if reset {
            let alive = match written {
                Ok(()) => self.reply().await.is_ok_and(|reply| reply.code == 250),
                Err(_) => false,
            };
            if !alive {
                return Err(Failure::Stale(format!(
                    "{}: the kept session is gone",
                    self.peer
                )));
            }
        } else {
            written?;
        }
        let mail = self.reply().await?;
        let mut rcpts = Vec::with_capacity(recipients.len());
        for _ in recipients {
            rcpts.push(self.reply().await?);
        }
        let data = self.reply().await?;
        Ok((mail, rcpts, Some(data)))
    }

    /// The envelope one command at a time, stopping where the server's answers say to.
    async fn lockstep(
        &mut self,
        reset: bool,
        mail_from: &str,
        recipients: &[Mailbox],
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), Failure> {
        if reset
            && !self
                .command("RSET")
                .await
                .is_ok_and(|reply| reply.code == 250)
        {
            return Err(Failure::Stale(format!(
                "{}: the kept session is gone",
                self.peer
            )));
        }
        let mail = self.command(mail_from).await?;
        if mail.code != 250 {
            return Ok((mail, Vec::new(), None));
        }
        let mut rcpts = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            rcpts.push(self.command(&format!("RCPT TO:<{recipient}>")).await?);
        }
        if !rcpts.iter().any(|reply| matches!(reply.code, 250 | 251)) {
            return Ok((mail, rcpts, None));
        }
        let data = self.command("DATA").await?;
        Ok((mail, rcpts, Some(data)))
    }

    async fn command(&mut self, line: &str) -> Result<Reply, Failure> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.reply().await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let peer = &self.peer;
        let written = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(self.timeout, written)
            .await
            .map_err(|_| Failure::Temporary(format!("{peer}: write timed out")))?
            .map_err(|e| Failure::Temporary(format!("{peer}: {e}")))
    }

    /// Dot-stuffed message, CRLF line ends enforced, then `.`.
    async fn send_data(&mut self, message: &[u8]) -> Result<(), Failure> {
        self.write(&data_section(message)).await
    }

    async fn reply(&mut self) -> Result<Reply, Failure> {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(self.timeout, self.stream.read_line(&mut line))
                .await
                .map_err(|_| Failure::Temporary(format!("{}: no reply in time", self.peer)))?
                .map_err(|e| Failure::Temporary(format!("{}: {e}", self.peer)))?;
            if read == 0 || line.len() < 4 {
                return Err(Failure::Temporary(format!(
                    "{}: connection closed",
                    self.peer
                )));
            }
            let code: u16 = line[..3]
                .parse()
                .map_err(|_| Failure::Temporary(format!("{}: not an SMTP reply", self.peer)))?;
            text.push(line[4..].trim_end().to_string());
            if line.as_bytes()[3] != b'-' {
                return Ok(Reply {
                    code,
                    text: text.join(" "),
                });
            }
        }
    }
}

/// The DATA section for `message`: its lines with CRLF endings, a line starting with a dot
/// stuffed with another (RFC 5321 section 4.5.2), then the end of data.
fn data_section(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    if needs_no_stuffing(message) {
        out.extend_from_slice(message); // the common case: as spooled, in one copy
    } else {
        let mut start = 0;
        while start < message.len() {
            let end =
                memchr::memchr(b'\n', &message[start..]).map_or(message.len(), |at| start + at + 1);
            let line = &message[start..end];
            let line = line
                .strip_suffix(b"\n")
                .map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l));
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            start = end;
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Whether a message can go out as it is: every line ends in CRLF (the last one too) and none
/// starts with a dot, so there is nothing to stuff or mend.
fn needs_no_stuffing(message: &[u8]) -> bool {
    if message.is_empty() || !message.ends_with(b"\r\n") || message[0] == b'.' {
        return message.is_empty();
    }
    memchr::memchr_iter(b'\n', message)
        .all(|at| at > 0 && message[at - 1] == b'\r' && message.get(at + 1) != Some(&b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Line by line, as the first version did it.
    fn by_lines(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in message.split_inclusive(|b| *b == b'\n') {
            let line = line
                .strip_suffix(b"\n")
                .map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l));
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    #[test]
    fn data_sections() {
        assert_eq!(data_section(b""), b".\r\n");
        assert_eq!(data_section(b"a\r\nb\r\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(data_section(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(data_section(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(data_section(b"a\nb"), b"a\r\nb\r\n.\r\n");
    }

    proptest! {
        #[test]
        fn data_sections_match_line_by_line(message in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a')], 0..64)) {
            prop_assert_eq!(data_section(&message), by_lines(&message));
        }
    }
}
