//! The thin async layer: moves bytes between a connection and a [`Session`], asks a [`Policy`]
//! the session's questions and hands accepted messages to a [`Sink`].
//!
//! Every read and every write has a deadline ([`ListenerConfig::command_timeout`], like
//! Postfix's `smtpd_timeout`; RFC 5321 section 4.5.3.2 asks for at least 5 minutes): a client
//! that sends nothing gets `421 4.4.2`, one that stops reading is closed. A message's data as a
//! whole has its own deadline ([`ListenerConfig::data_timeout`], `451 4.4.2`), so a client that
//! trickles a byte a second is not kept. At most [`ListenerConfig::max_connections`] sessions run
//! at once, at most [`ListenerConfig::max_sessions_per_ip`] from one address; one more gets
//! `421 4.7.0` at once. Failed AUTH attempts slow down and lock out ([`crate::throttle`]).
//! Every refusal (4xx or 5xx) is counted and logged, the log lines rate-limited.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::counters::{Counter, Counters};
use crate::error::Error;
use crate::limits::LogLimit;
use crate::reply::Reply;
use crate::session::{
    AuthAvailability, Body, Credentials, Event, MailFrom, RcptTo, ReceivedMessage, Session,
    SessionConfig,
};
use crate::spool::{Envelope, QueueId, Spool};
use crate::throttle::{AuthThrottle, Failure, ThrottleConfig, Turn};

/// What the policy knows about a connected client; grows as the session goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client's address.
    pub peer: SocketAddr,
    /// The name it gave in HELO/EHLO.
    pub helo: Option<String>,
    /// TLS is active.
    pub tls: bool,
    /// The tenant it belongs to: from [`Admission::tenant`] (a relay connector matched its
    /// address) or from a successful AUTH. `None` means no tenant: it must not relay.
    pub tenant: Option<String>,
    /// The user name it authenticated as.
    pub username: Option<String>,
}

/// The policy's answer to a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The tenant, when the client's address alone decides it (a relay connector).
    pub tenant: Option<String>,
    /// Whether and when AUTH is offered to this client.
    pub auth: AuthAvailability,
}

/// The decisions the listener leaves to its owner: which clients, senders, recipients and
/// credentials are allowed, and for which tenant. A refusal is the reply the client gets; keep
/// temporary (4xx) and permanent (5xx) refusals apart, and never leak internals in the text.
pub trait Policy: Send + Sync + 'static {
    /// A client connected. `Err` refuses it (typically `554 5.7.1`) and closes.
    fn connect(&self, client: &Client) -> impl Future<Output = Result<Admission, Reply>> + Send;

    /// The client sent AUTH. `Ok` names its tenant; `Err` is typically `535 5.7.8`.
    fn authenticate(
        &self,
        client: &Client,
        credentials: &Credentials,
    ) -> impl Future<Output = Result<String, Reply>> + Send;

    /// MAIL FROM. Typically refuses a sender domain the tenant has not accepted.
    fn sender(
        &self,
        client: &Client,
        sender: &MailFrom,
    ) -> impl Future<Output = Result<(), Reply>> + Send;

    /// RCPT TO. Must refuse (5xx) every recipient of a client without a tenant: never an open
    /// relay.
    fn recipient(
        &self,
        client: &Client,
        sender: &MailFrom,
        recipient: &RcptTo,
    ) -> impl Future<Output = Result<(), Reply>> + Send;
}

/// Where accepted messages go ("spool, then sign"). The client gets `250` only after `message`
/// returns `Ok`, so it must have stored the message durably by then.
pub trait Sink: Send + Sync + 'static {
    /// Takes a complete message.
    fn message(
        &self,
        client: &Client,
        message: ReceivedMessage,
    ) -> impl Future<Output = Result<QueueId, Reply>> + Send;
}

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// What sessions offer; `starttls` and `auth` are set per connection from [`Self::tls`] and
    /// the [`Admission`].
    pub session: SessionConfig,
    /// How long each read (a command, a piece of message data, the TLS handshake) and each
    /// write may take (RFC 5321 section 4.5.3.2.7: at least 5 minutes; Postfix's
    /// `smtpd_timeout`). A client that sends nothing gets `421 4.4.2`; one that stops reading
    /// is closed.
    pub command_timeout: Duration,
    /// How long one message's data may take, from the `354` (or the first BDAT) to its end,
    /// however steadily it trickles in; then `451 4.4.2` and the session is closed.
    pub data_timeout: Duration,
    /// Most simultaneous sessions in all; one more gets `421 4.7.0`.
    pub max_connections: usize,
    /// Most simultaneous sessions from one client address.
    pub max_sessions_per_ip: usize,
    /// How failed AUTH attempts are slowed down and locked out.
    pub auth_throttle: ThrottleConfig,
    /// The TLS configuration; STARTTLS is offered when set.
    pub tls: Option<Arc<ServerConfig>>,
    /// Where accepted messages and refusals are counted.
    pub counters: Arc<Counters>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            command_timeout: Duration::from_mins(5),
            data_timeout: Duration::from_mins(10),
            max_connections: 500,
            max_sessions_per_ip: 50, // Postfix's smtpd_client_connection_count_limit
            auth_throttle: ThrottleConfig::default(),
            tls: None,
            counters: Arc::default(),
        }
    }
}

/// An SMTP listener: a configuration, a policy and a sink. Cheap to clone.
#[derive(Debug)]
pub struct Listener<P, S> {
    config: Arc<ListenerConfig>,
    policy: Arc<P>,
    sink: Arc<S>,
    limiter: Arc<Limiter>,
    guards: Arc<Guards>,
}

/// The state the sessions of one listener share besides the connection counts.
#[derive(Debug)]
struct Guards {
    throttle: Mutex<AuthThrottle>,
    /// Refusals, timeouts and AUTH failures: an attacker could otherwise fill the disk.
    log: Mutex<LogLimit>,
}

/// Log lines about clients (refusals, timeouts, AUTH failures) per [`LOG_WINDOW`].
const LOG_LINES: u32 = 50;
const LOG_WINDOW: Duration = Duration::from_secs(10);
/// Accept errors (usually out of file descriptors): one line per window, with a count.
const ACCEPT_LOG_WINDOW: Duration = Duration::from_secs(10);
/// The pause after a failed accept, doubling while accepting keeps failing.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(2);

impl<P, S> Clone for Listener<P, S> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            policy: self.policy.clone(),
            sink: self.sink.clone(),
            limiter: self.limiter.clone(),
            guards: self.guards.clone(),
        }
    }
}

/// How a run of the session over one transport ended.
enum Ending {
    Closed,
    StartTls,
}

/// One connection's state beside its session.
struct Connection {
    session: Session,
    client: Client,
    /// The tenant the connection was admitted with; AUTH may replace it until STARTTLS resets.
    admitted_tenant: Option<String>,
    /// The sender of the current transaction, for recipient decisions.
    sender: Option<MailFrom>,
    /// The command whose refusal the session is about to send, for the log.
    refusing: Option<&'static str>,
}

impl<P: Policy, S: Sink> Listener<P, S> {
    /// A listener; nothing runs until [`Listener::serve`] or [`Listener::handle`].
    pub fn new(config: ListenerConfig, policy: Arc<P>, sink: Arc<S>) -> Self {
        let limiter = Arc::new(Limiter::new(
            config.max_connections,
            config.max_sessions_per_ip,
        ));
        let guards = Arc::new(Guards {
            throttle: Mutex::new(AuthThrottle::new(config.auth_throttle)),
            log: Mutex::new(LogLimit::new(LOG_LINES, LOG_WINDOW)),
        });
        Self {
            config: Arc::new(config),
            policy,
            sink,
            limiter,
            guards,
        }
    }

    /// The configuration it runs with (its counters among it).
    pub fn config(&self) -> &ListenerConfig {
        &self.config
    }

    /// Accepts connections for ever, one task per session. Stop it by dropping or aborting the
    /// task that runs it, or use [`Listener::serve_until`].
    pub async fn serve(&self, listener: TcpListener) {
        self.serve_until(listener, std::future::pending()).await;
    }

    /// Accepts connections until `shutdown` completes, then stops accepting and returns;
    /// sessions already running go on in their own tasks. Nothing acknowledged is at risk if the
    /// process then exits: a `250` is only sent once the message is spooled.
    pub async fn serve_until(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut accept_log = LogLimit::new(1, ACCEPT_LOG_WINDOW);
        let mut backoff = ACCEPT_BACKOFF;
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => {
                    backoff = ACCEPT_BACKOFF;
                    accepted
                }
                Err(error) => {
                    // Usually out of file descriptors: back off rather than spin, and say so
                    // once in a while rather than every time.
                    if let Some(more) = accept_log.allow(Instant::now().into_std()) {
                        tracing::warn!(%error, failed_before = more, pause = ?backoff, "accepting an SMTP connection failed (out of file descriptors? see max_connections and ulimit -n)");
                    }
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            };
            let listener = self.clone();
            tokio::spawn(async move {
                if let Err(error) = listener.handle(stream, peer).await {
                    tracing::debug!(%peer, %error, "SMTP session ended with an error");
                }
            });
        }
    }

    /// Runs one session over `stream` (a `TcpStream`, or an in-memory duplex in tests).
    pub async fn handle<T>(&self, mut stream: T, peer: SocketAddr) -> Result<(), Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let _slot = match Limiter::acquire(&self.limiter, peer.ip()) {
            Ok(slot) => slot,
            Err(full) => {
                let reply = match full {
                    Full::Listener => {
                        Reply::new(421, [4, 7, 0], "Too many connections, try again later")
                    }
                    Full::Address => {
                        Reply::new(421, [4, 7, 0], "Too many connections from your address")
                    }
                };
                return self.turn_away(&mut stream, peer, &reply).await;
            }
        };
        let client = Client {
            peer,
            helo: None,
            tls: false,
            tenant: None,
            username: None,
        };
        let admission = match self.policy.connect(&client).await {
            Ok(admission) => admission,
            Err(reply) => return self.turn_away(&mut stream, peer, &reply).await,
        };
        let mut session_config = self.config.session.clone();
        session_config.auth = admission.auth;
        session_config.starttls = self.config.tls.is_some();
        let mut connection = Connection {
            session: Session::new(session_config),
            client: Client {
                tenant: admission.tenant.clone(),
                ..client
            },
            admitted_tenant: admission.tenant,
            sender: None,
            refusing: None,
        };
        match self.drive(&mut connection, &mut stream).await? {
            Ending::Closed => Ok(()),
            Ending::StartTls => self.continue_over_tls(connection, stream).await,
        }
    }

    async fn continue_over_tls<T>(&self, mut connection: Connection, stream: T) -> Result<(), Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let tls = self
            .config
            .tls
            .clone()
            .expect("STARTTLS is offered only with TLS");
        let handshake = TlsAcceptor::from(tls).accept(stream);
        let Ok(handshake) = tokio::time::timeout(self.config.command_timeout, handshake).await
        else {
            self.timed_out(&connection.client, "the TLS handshake");
            return Err(Error::Connection(std::io::ErrorKind::TimedOut.into()));
        };
        let mut stream = handshake.map_err(Error::Connection)?;
        connection.session.tls_established();
        connection.client.tls = true;
        connection.client.helo = None;
        connection.client.username = None;
        connection
            .client
            .tenant
            .clone_from(&connection.admitted_tenant);
        connection.sender = None;
        // The session refuses a second STARTTLS, so this run can only end in Closed.
        self.drive(&mut connection, &mut stream).await.map(|_| ())
    }

    /// Runs the session over one transport until it closes or asks for TLS.
    async fn drive<T>(&self, connection: &mut Connection, stream: &mut T) -> Result<Ending, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut output = Vec::new();
        let mut buffer = vec![0; 16 * 1024];
        let mut data_deadline = None;
        loop {
            while let Some(event) = connection.session.poll() {
                match event {
                    Event::Reply(reply) => {
                        if !reply.is_positive() {
                            let stage = connection.refusing.take().unwrap_or("protocol");
                            self.refused(&connection.client, stage, &reply);
                        }
                        output.extend_from_slice(&reply.to_bytes());
                    }
                    Event::StartTls => {
                        self.send(&connection.client, stream, &mut output).await?;
                        return Ok(Ending::StartTls);
                    }
                    Event::Close => {
                        self.send(&connection.client, stream, &mut output).await?;
                        self.shut(stream).await;
                        return Ok(Ending::Closed);
                    }
                    question => self.answer(connection, question).await,
                }
            }
            // Replies to pipelined commands go out together, once the input is used up.
            self.send(&connection.client, stream, &mut output).await?;
            // One deadline for a message's data as a whole, besides the one for each read.
            data_deadline = if connection.session.is_reading_data() {
                data_deadline.or_else(|| Some(Instant::now() + self.config.data_timeout))
            } else {
                None
            };
            let read_deadline = Instant::now() + self.config.command_timeout;
            let deadline = data_deadline.map_or(read_deadline, |d| d.min(read_deadline));
            match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
                Err(_) => {
                    let reply = if data_deadline == Some(deadline) {
                        self.timed_out(&connection.client, "the message data");
                        Reply::new(
                            451,
                            [4, 4, 2],
                            "Message data took too long, closing connection",
                        )
                    } else {
                        self.timed_out(&connection.client, "a command");
                        Reply::new(421, [4, 4, 2], "Timeout, closing connection")
                    };
                    output.extend_from_slice(&reply.to_bytes());
                    // Counted once: not again if this write times out as well.
                    write(stream, &mut output, self.config.command_timeout).await?;
                    self.shut(stream).await;
                    return Ok(Ending::Closed);
                }
                Ok(Ok(0)) => return Ok(Ending::Closed),
                Ok(Ok(read)) => connection.session.receive(&buffer[..read]),
                Ok(Err(error)) => return Err(Error::Connection(error)),
            }
        }
    }

    /// Writes what is in `output`, within the deadline for a write: a client that does not read
    /// its replies is not kept.
    async fn send<T>(
        &self,
        client: &Client,
        stream: &mut T,
        output: &mut Vec<u8>,
    ) -> Result<(), Error>
    where
        T: AsyncWrite + Unpin,
    {
        let written = write(stream, output, self.config.command_timeout).await;
        if let Err(Error::Connection(error)) = &written
            && error.kind() == std::io::ErrorKind::TimedOut
        {
            self.timed_out(client, "reading our replies");
        }
        written
    }

    /// Closes the write side, within the deadline for a write (a TLS close_notify is a write).
    async fn shut<T: AsyncWrite + Unpin>(&self, stream: &mut T) {
        let _ = tokio::time::timeout(self.config.command_timeout, stream.shutdown()).await;
    }

    /// Refuses a connection before the greeting: counted, logged, answered and closed.
    async fn turn_away<T>(
        &self,
        stream: &mut T,
        peer: SocketAddr,
        reply: &Reply,
    ) -> Result<(), Error>
    where
        T: AsyncWrite + Unpin,
    {
        self.config.counters.count(Counter::TurnedAway);
        if let Some(suppressed) = self.log_allowed() {
            tracing::warn!(%peer, reply = %reply_text(reply), suppressed, "SMTP connection turned away");
        }
        write(stream, &mut reply.to_bytes(), self.config.command_timeout).await?;
        self.shut(stream).await;
        Ok(())
    }

    /// Counts and logs a refusal the client is about to get.
    fn refused(&self, client: &Client, stage: &str, reply: &Reply) {
        let counter = if reply.is_transient() {
            Counter::Tempfailed
        } else {
            Counter::Refused
        };
        self.config.counters.count(counter);
        if let Some(suppressed) = self.log_allowed() {
            let (peer, tenant) = (client.peer, client.tenant.as_deref());
            let reply = reply_text(reply);
            if counter == Counter::Tempfailed {
                tracing::warn!(%peer, tenant, stage, %reply, suppressed, "SMTP refusal");
            } else {
                tracing::info!(%peer, tenant, stage, %reply, suppressed, "SMTP refusal");
            }
        }
    }

    /// Counts and logs a session closed on a deadline.
    fn timed_out(&self, client: &Client, waiting_for: &str) {
        self.config.counters.count(Counter::TimedOut);
        if let Some(suppressed) = self.log_allowed() {
            tracing::info!(peer = %client.peer, waiting_for, suppressed, "SMTP client timed out, closing");
        }
    }

    /// Whether a line about a client may be logged now; `Some(lines left out before it)`.
    fn log_allowed(&self) -> Option<u64> {
        lock(&self.guards.log).allow(Instant::now().into_std())
    }

    async fn answer(&self, connection: &mut Connection, question: Event) {
        connection.client.helo = connection.session.helo().map(str::to_owned);
        let stage = match &question {
            Event::Sender(_) => "MAIL",
            Event::Recipient(_) => "RCPT",
            Event::Authenticate(_) => "AUTH",
            Event::Message(_) => "DATA",
            Event::Reply(_) | Event::StartTls | Event::Close => "protocol",
        };
        let Connection {
            session, client, ..
        } = connection;
        let verdict = match question {
            Event::Sender(sender) => {
                let verdict = self.policy.sender(client, &sender).await;
                if verdict.is_ok() {
                    connection.sender = Some(sender);
                }
                verdict
            }
            Event::Recipient(recipient) => match &connection.sender {
                Some(sender) => self.policy.recipient(client, sender, &recipient).await,
                None => Err(Reply::new(503, [5, 5, 1], "Need MAIL command first")),
            },
            Event::Authenticate(credentials) => self.authenticate(client, &credentials).await,
            Event::Message(message) => {
                connection.sender = None;
                match self.sink.message(client, message).await {
                    Ok(id) => {
                        self.config.counters.count(Counter::Accepted);
                        return session.accept_message(&id.to_string());
                    }
                    Err(reply) => Err(reply),
                }
            }
            Event::Reply(_) | Event::StartTls | Event::Close => unreachable!("not a question"),
        };
        match verdict {
            Ok(()) => session.accept(),
            Err(reply) => {
                connection.refusing = Some(stage);
                session.reject(reply);
            }
        }
    }

    /// AUTH, throttled: the attempt waits its turn (the delay grows with the failures of the
    /// login and of the client's address), a locked login is refused without a look at the
    /// password, and a failure holds its reply for the delay it earned.
    async fn authenticate(
        &self,
        client: &mut Client,
        credentials: &Credentials,
    ) -> Result<(), Reply> {
        let (login, address) = (credentials.username.as_str(), client.peer.ip());
        let started = Instant::now();
        let max_wait = self.config.auth_throttle.max_delay;
        loop {
            let now = Instant::now();
            let turn = lock(&self.guards.throttle).turn(login, address, now.into_std());
            match turn {
                Turn::Go => break,
                Turn::Locked { delay, .. } => {
                    if let Some(suppressed) = self.log_allowed() {
                        let (peer, user) = (client.peer, loggable(login));
                        tracing::info!(%peer, ?user, ?delay, suppressed, "AUTH refused: the login is locked");
                    }
                    tokio::time::sleep(delay).await;
                    return Err(invalid_credentials());
                }
                Turn::WaitUntil(until) => {
                    let until = Instant::from_std(until);
                    if until.duration_since(started) > max_wait {
                        return Err(Reply::new(
                            454,
                            [4, 7, 0],
                            "Too many failed authentications, try again later",
                        ));
                    }
                    tokio::time::sleep_until(until).await;
                }
            }
        }
        // The attempt is in flight until it is reported; if this task is dropped first, the
        // guard reports it abandoned.
        let mut in_flight = InFlight {
            throttle: &self.guards.throttle,
            login,
            reported: false,
        };
        let verdict = self.policy.authenticate(client, credentials).await;
        in_flight.reported = true;
        match verdict {
            Ok(tenant) => {
                lock(&self.guards.throttle).succeeded(login);
                client.tenant = Some(tenant);
                client.username = Some(credentials.username.clone());
                Ok(())
            }
            Err(reply) if reply.is_permanent() => {
                let now = Instant::now().into_std();
                let failure = lock(&self.guards.throttle).failed(login, address, now);
                self.log_auth_failure(client, login, &failure);
                tokio::time::sleep(failure.delay).await;
                Err(reply)
            }
            // A temporary failure (the database) is not the client's doing.
            Err(reply) => {
                lock(&self.guards.throttle).abandoned(login);
                Err(reply)
            }
        }
    }

    fn log_auth_failure(&self, client: &Client, login: &str, failure: &Failure) {
        let (peer, user) = (client.peer, loggable(login));
        if let Some(until) = failure.locked_until {
            self.config.counters.count(Counter::Lockout);
            let lockout = until.saturating_duration_since(std::time::Instant::now());
            // Always logged: one line per login per lock-out period at most.
            tracing::warn!(%peer, ?user, failures = failure.login_failures, ?lockout, "AUTH: login locked after too many failures");
        } else if let Some(suppressed) = self.log_allowed() {
            tracing::info!(%peer, ?user, login_failures = failure.login_failures, address_failures = failure.address_failures, delay = ?failure.delay, suppressed, "AUTH failed");
        }
    }
}

/// An AUTH attempt that went ahead, until its outcome is reported to the throttle.
struct InFlight<'a> {
    throttle: &'a Mutex<AuthThrottle>,
    login: &'a str,
    reported: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.reported {
            lock(self.throttle).abandoned(self.login);
        }
    }
}

/// The login as the client typed it, for the log: cut short (and logged quoted, with `?`).
fn loggable(login: &str) -> String {
    login.chars().take(64).collect()
}

/// The reply to a failed AUTH, whatever the reason (wrong password, unknown login, locked
/// login): nothing in it tells them apart (RFC 4954 section 6).
pub fn invalid_credentials() -> Reply {
    Reply::new(535, [5, 7, 8], "Authentication credentials invalid")
}

/// A reply as one log field: its lines joined, without the CRLFs.
fn reply_text(reply: &Reply) -> String {
    reply.to_string().trim_end().replace("\r\n", " / ")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A [`Sink`] that spools each message for the client's tenant and answers with its queue id.
/// (The signing gateway will wrap this: spool, then sign.)
#[derive(Debug, Clone)]
pub struct SpoolSink {
    spool: Arc<Spool>,
}

impl SpoolSink {
    /// A sink into `spool`.
    pub fn new(spool: Arc<Spool>) -> Self {
        Self { spool }
    }
}

impl Sink for SpoolSink {
    async fn message(&self, client: &Client, message: ReceivedMessage) -> Result<QueueId, Reply> {
        let Some(tenant) = client.tenant.clone() else {
            // The policy should have refused every recipient; refuse here too rather than queue
            // mail that belongs to no one.
            return Err(Reply::new(554, [5, 7, 1], "Relaying denied"));
        };
        let now = SystemTime::now();
        let envelope = Envelope {
            sender: message.sender.address,
            recipients: message
                .recipients
                .into_iter()
                .map(|recipient| recipient.address)
                .collect(),
            tenant,
            received_at: now,
            attempts: 0,
            next_attempt: now,
            eight_bit_mime: message.sender.body == Body::EightBitMime,
            smtputf8: message.sender.smtputf8,
        };
        let spool = self.spool.clone();
        let data = message.data;
        match tokio::task::spawn_blocking(move || spool.store(&envelope, &data)).await {
            Ok(Ok(id)) => {
                tracing::info!(%id, peer = %client.peer, tenant = client.tenant.as_deref(), "message spooled");
                Ok(id)
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "spooling a message failed");
                Err(error.reply())
            }
            Err(error) => {
                tracing::error!(%error, "the spool task failed");
                Err(Reply::new(
                    451,
                    [4, 3, 0],
                    "Temporary local problem, try again later",
                ))
            }
        }
    }
}

/// Counts sessions, in all and per client address.
#[derive(Debug)]
struct Limiter {
    max_total: usize,
    max_per_address: usize,
    sessions: Mutex<Sessions>,
}

#[derive(Debug, Default)]
struct Sessions {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Why a session got no place.
enum Full {
    Listener,
    Address,
}

/// One counted session; dropping it frees the place.
struct Slot {
    limiter: Arc<Limiter>,
    address: IpAddr,
}

impl Limiter {
    fn new(max_total: usize, max_per_address: usize) -> Self {
        Self {
            max_total,
            max_per_address,
            sessions: Mutex::default(),
        }
    }

    fn acquire(limiter: &Arc<Self>, address: IpAddr) -> Result<Slot, Full> {
        let mut sessions = lock(&limiter.sessions);
        if sessions.total >= limiter.max_total {
            return Err(Full::Listener);
        }
        let count = sessions.per_address.entry(address).or_insert(0);
        if *count >= limiter.max_per_address {
            return Err(Full::Address);
        }
        *count += 1;
        sessions.total += 1;
        Ok(Slot {
            limiter: limiter.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut sessions = lock(&self.limiter.sessions);
        sessions.total -= 1;
        if let Some(count) = sessions.per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                sessions.per_address.remove(&self.address);
            }
        }
    }
}

/// Writes all of `output` within `limit`; a client that does not read gets `TimedOut`.
async fn write<T: AsyncWrite + Unpin>(
    stream: &mut T,
    output: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), Error> {
    if output.is_empty() {
        return Ok(());
    }
    let written = tokio::time::timeout(limit, async {
        stream.write_all(output).await?;
        stream.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => {
            output.clear();
            Ok(())
        }
        Ok(Err(error)) => Err(Error::Connection(error)),
        Err(_) => Err(Error::Connection(std::io::ErrorKind::TimedOut.into())),
    }
}
