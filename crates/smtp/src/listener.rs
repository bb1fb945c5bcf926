//! The thin async layer: moves bytes between a connection and a [`Session`], asks a [`Policy`]
//! the session's questions and hands accepted messages to a [`Sink`].
//!
//! Timeouts follow RFC 5321 section 4.5.3.2 (the server waits at least 5 minutes for a command
//! and for each read of message data); a client that runs out of time gets `421 4.4.2`. Each
//! client address may hold at most [`ListenerConfig::max_sessions_per_ip`] sessions; one more
//! gets `421 4.7.0` at once.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::counters::{Counter, Counters};
use crate::error::Error;
use crate::reply::Reply;
use crate::session::{
    AuthAvailability, Body, Credentials, Event, MailFrom, RcptTo, ReceivedMessage, Session,
    SessionConfig,
};
use crate::spool::{Envelope, QueueId, Spool};

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
    /// How long to wait for the next command (RFC 5321 section 4.5.3.2.7: at least 5 minutes).
    pub command_timeout: Duration,
    /// How long to wait for each read of message data.
    pub data_timeout: Duration,
    /// Most simultaneous sessions from one client address.
    pub max_sessions_per_ip: usize,
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
            data_timeout: Duration::from_mins(5),
            max_sessions_per_ip: 50, // Postfix's smtpd_client_connection_count_limit
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
}

impl<P, S> Clone for Listener<P, S> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            policy: self.policy.clone(),
            sink: self.sink.clone(),
            limiter: self.limiter.clone(),
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
}

impl<P: Policy, S: Sink> Listener<P, S> {
    /// A listener; nothing runs until [`Listener::serve`] or [`Listener::handle`].
    pub fn new(config: ListenerConfig, policy: Arc<P>, sink: Arc<S>) -> Self {
        let limiter = Arc::new(Limiter::new(config.max_sessions_per_ip));
        Self {
            config: Arc::new(config),
            policy,
            sink,
            limiter,
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
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: wait a little rather than spin.
                    tracing::warn!(%error, "accepting an SMTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
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
        let Some(_slot) = Limiter::acquire(&self.limiter, peer.ip()) else {
            let reply = Reply::new(421, [4, 7, 0], "Too many connections from your address");
            return say_and_close(&mut stream, &reply).await;
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
            Err(reply) => return say_and_close(&mut stream, &reply).await,
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
        let mut stream = tokio::time::timeout(self.config.command_timeout, handshake)
            .await
            .map_err(|_| Error::Connection(std::io::ErrorKind::TimedOut.into()))?
            .map_err(Error::Connection)?;
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
        loop {
            while let Some(event) = connection.session.poll() {
                match event {
                    Event::Reply(reply) => output.extend_from_slice(&reply.to_bytes()),
                    Event::StartTls => {
                        write(stream, &mut output).await?;
                        return Ok(Ending::StartTls);
                    }
                    Event::Close => {
                        write(stream, &mut output).await?;
                        let _ = stream.shutdown().await;
                        return Ok(Ending::Closed);
                    }
                    question => self.answer(connection, question).await,
                }
            }
            // Replies to pipelined commands go out together, once the input is used up.
            write(stream, &mut output).await?;
            let limit = if connection.session.is_reading_data() {
                self.config.data_timeout
            } else {
                self.config.command_timeout
            };
            match tokio::time::timeout(limit, stream.read(&mut buffer)).await {
                Err(_) => {
                    let reply = Reply::new(421, [4, 4, 2], "Timeout, closing connection");
                    say_and_close(stream, &reply).await?;
                    return Ok(Ending::Closed);
                }
                Ok(Ok(0)) => return Ok(Ending::Closed),
                Ok(Ok(read)) => connection.session.receive(&buffer[..read]),
                Ok(Err(error)) => return Err(Error::Connection(error)),
            }
        }
    }

    async fn answer(&self, connection: &mut Connection, question: Event) {
        connection.client.helo = connection.session.helo().map(str::to_owned);
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
            Event::Authenticate(credentials) => {
                match self.policy.authenticate(client, &credentials).await {
                    Ok(tenant) => {
                        client.tenant = Some(tenant);
                        client.username = Some(credentials.username.clone());
                        Ok(())
                    }
                    Err(reply) => Err(reply),
                }
            }
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
                if reply.code() >= 500 {
                    self.config.counters.count(Counter::Refused);
                }
                session.reject(reply);
            }
        }
    }
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

/// Counts sessions per client address.
#[derive(Debug)]
struct Limiter {
    max: usize,
    sessions: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted session; dropping it frees the place.
struct Slot {
    limiter: Arc<Limiter>,
    address: IpAddr,
}

impl Limiter {
    fn new(max: usize) -> Self {
        Self {
            max,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn acquire(limiter: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        let mut sessions = limiter.lock();
        let count = sessions.entry(address).or_insert(0);
        if *count >= limiter.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            limiter: limiter.clone(),
            address,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut sessions = self.limiter.lock();
        if let Some(count) = sessions.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                sessions.remove(&self.address);
            }
        }
    }
}

async fn write<T: AsyncWrite + Unpin>(stream: &mut T, output: &mut Vec<u8>) -> Result<(), Error> {
    if output.is_empty() {
        return Ok(());
    }
    stream.write_all(output).await.map_err(Error::Connection)?;
    stream.flush().await.map_err(Error::Connection)?;
    output.clear();
    Ok(())
}

async fn say_and_close<T: AsyncWrite + Unpin>(stream: &mut T, reply: &Reply) -> Result<(), Error> {
    write(stream, &mut reply.to_bytes()).await?;
    let _ = stream.shutdown().await;
    Ok(())
}
