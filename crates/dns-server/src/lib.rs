//! The key zone's authoritative DNS server: UDP and TCP, EDNS, truncation, AXFR to configured
//! secondaries and NOTIFY to them on every new serial.
//!
//! The server answers from a [`ZoneHandle`]: an immutable [`Zone`] snapshot that the caller
//! swaps with [`ZoneHandle::replace`] whenever the store's serial moves. A query takes a read
//! lock for the time of an `Arc` clone and never touches the store. All DNS logic lives in
//! [`answer::respond`] (bytes in, messages out); this module only moves bytes.
//!
//! Availability under abuse: every TCP read and write has a deadline ([`Limits::tcp_timeout`]),
//! TCP connections are capped in all and per client address (beyond: closed at once), and UDP
//! responses are rate-limited per source prefix ([`rrl`]).
//!
//! ```no_run
//! # async fn demo(zone: signet_zone::Zone) -> Result<(), signet_dns_server::DnsError> {
//! use signet_dns_server::{DnsConfig, DnsServer, ZoneHandle};
//! let handle = ZoneHandle::new(zone);
//! let config = DnsConfig::new("127.0.0.1:5300".parse().unwrap());
//! let server = DnsServer::bind(&config).await?;
//! let (_stop, stop) = tokio::sync::watch::channel(false);
//! server.run(handle, stop).await
//! # }
//! ```

pub mod answer;
mod fast;
mod limits;
pub mod rrl;

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use signet_zone::Zone;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use answer::{Transport, respond};
use limits::{ConnectionTable, LogThrottle, Refusal};
use rrl::{ResponseRateLimiter, Verdict};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Where to listen, who may transfer the zone (and is notified of changes), and the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    pub listen: SocketAddr,
    pub secondaries: Vec<SocketAddr>,
    pub limits: Limits,
}

impl DnsConfig {
    /// Listening on `listen`, no secondaries, the default limits.
    pub fn new(listen: SocketAddr) -> DnsConfig {
        DnsConfig {
            listen,
            secondaries: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// What keeps the server available to everyone when some clients misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The deadline of every TCP read (a client idle this long is disconnected, as RFC 7766
    /// suggests: seconds, not minutes) and of every TCP write, each zone-transfer message
    /// included (a client that does not read its answers is disconnected).
    pub tcp_timeout: Duration,
    /// TCP connections open at once; beyond, new ones are closed at once.
    pub tcp_connections: usize,
    /// TCP connections open at once from one client address; beyond, closed at once.
    pub tcp_connections_per_address: usize,
    /// UDP responses per second to one source prefix (/24, /56) before [`rrl`] drops or
    /// truncates them; 0 turns rate limiting off.
    pub rrl_responses_per_second: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            tcp_timeout: Duration::from_secs(10),
            tcp_connections: 512,
            tcp_connections_per_address: 16,
            rrl_responses_per_second: 20,
        }
    }
}

/// A zone with its answers prepared in wire form.
#[derive(Debug)]
pub struct Served {
    pub zone: Zone,
    fast: fast::FastIndex,
}

/// The zone being served; cheap to clone, shared by every task of the server.
#[derive(Debug, Clone)]
pub struct ZoneHandle {
    zone: Arc<RwLock<Arc<Served>>>,
    serial: watch::Sender<u32>,
}

impl ZoneHandle {
    pub fn new(zone: Zone) -> ZoneHandle {
        let (serial, _) = watch::channel(zone.serial());
        ZoneHandle {
            zone: Arc::new(RwLock::new(Arc::new(prepare(zone)))),
            serial,
        }
    }

    /// The snapshot answering queries now.
    pub fn current(&self) -> Arc<Served> {
        Arc::clone(
            &self
                .zone
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn serial(&self) -> u32 {
        self.current().zone.serial()
    }

    /// Serves `zone` from now on (its answers prepared before the swap); secondaries are
    /// notified if the serial changed.
    pub fn replace(&self, zone: Zone) {
        let serial = zone.serial();
        let served = Arc::new(prepare(zone));
        *self
            .zone
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = served;
        self.serial
            .send_if_modified(|current| std::mem::replace(current, serial) != serial);
    }
}

impl Served {
    /// The answers to one UDP datagram: the prepared fast path when it applies, else the
    /// general one. This is the whole UDP query path, minus the socket.
    pub fn respond_udp(&self, request: &[u8]) -> Vec<Vec<u8>> {
        match self.fast.respond_udp(request) {
            Some(reply) => vec![reply],
            None => respond(&self.zone, request, Transport::Udp),
        }
    }
}

fn prepare(zone: Zone) -> Served {
    let fast = fast::FastIndex::new(&zone);
    Served { zone, fast }
}

/// Sockets bound and ready; [`DnsServer::run`] serves until told to stop.
#[derive(Debug)]
pub struct DnsServer {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    secondaries: Vec<SocketAddr>,
    limits: Limits,
}

/// Log lines about refused connections, limited responses and failed accepts: at most one per
/// this interval each.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

impl DnsServer {
    pub async fn bind(config: &DnsConfig) -> Result<DnsServer, DnsError> {
        let bind_error = |source| DnsError::Bind {
            address: config.listen,
            source,
        };
        let udp = udp_socket(config.listen).map_err(bind_error)?;
        let tcp = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        Ok(DnsServer {
            udp: Arc::new(udp),
            tcp,
            secondaries: config.secondaries.clone(),
            limits: config.limits,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, DnsError> {
        Ok(self.udp.local_addr()?)
    }

    /// Serves until `stop` turns true.
    pub async fn run(
        self,
        zone: ZoneHandle,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), DnsError> {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let mut tasks = tokio::task::JoinSet::new();
        let limiter = (self.limits.rrl_responses_per_second > 0).then(|| {
            Arc::new(ResponseRateLimiter::new(
                self.limits.rrl_responses_per_second,
                Instant::now(),
            ))
        });
        let limited_log = Arc::new(std::sync::Mutex::new(LogThrottle::new(LOG_INTERVAL)));
        for _ in 0..workers {
            tasks.spawn(serve_udp(
                Arc::clone(&self.udp),
                zone.clone(),
                limiter.clone(),
                Arc::clone(&limited_log),
            ));
        }
        let allowed: Vec<IpAddr> = self.secondaries.iter().map(SocketAddr::ip).collect();
        tasks.spawn(serve_tcp(self.tcp, zone.clone(), allowed, self.limits));
        tasks.spawn(notify_on_change(zone, self.secondaries));
        let _ = stop.wait_for(|stopped| *stopped).await;
        tasks.shutdown().await;
        Ok(())
    }
}

/// Socket buffers for bursts of queries; the kernel may cap them at `net.core.rmem_max`.
const UDP_BUFFER: usize = 4 << 20;

fn udp_socket(listen: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(listen),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a smaller buffer only means more drops under load.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&listen.into())?;
    UdpSocket::from_std(socket.into())
}

async fn serve_udp(
    socket: Arc<UdpSocket>,
    zone: ZoneHandle,
    limiter: Option<Arc<ResponseRateLimiter>>,
    limited_log: Arc<std::sync::Mutex<LogThrottle>>,
) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let (len, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems: keep serving.
                debug!("dns: udp receive error: {e}");
                continue;
            }
        };
        for mut message in zone.current().respond_udp(&buffer[..len]) {
            if let Some(limiter) = &limiter {
                let verdict = limiter.check(peer.ip(), Instant::now());
                if verdict != Verdict::Answer {
                    note_limited(&limited_log, peer);
                }
                match verdict {
                    Verdict::Answer => {}
                    Verdict::Slip => rrl::truncate(&mut message),
                    Verdict::Drop => continue,
                }
            }
            if let Err(e) = socket.send_to(&message, peer).await {
                debug!("dns: udp send to {peer} failed: {e}");
            }
        }
    }
}

fn note_limited(log: &std::sync::Mutex<LogThrottle>, peer: SocketAddr) {
    let events = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .event(Instant::now());
    if let Some(events) = events {
        warn!(
            "dns: response rate limit: {events} UDP responses dropped or truncated since the last report (latest to {})",
            peer.ip()
        );
    }
}

async fn serve_tcp(
    listener: TcpListener,
    zone: ZoneHandle,
    secondaries: Vec<IpAddr>,
    limits: Limits,
) {
    let table = ConnectionTable::new(limits.tcp_connections, limits.tcp_connections_per_address);
    let mut refused = LogThrottle::new(LOG_INTERVAL);
    let mut failed = LogThrottle::new(LOG_INTERVAL);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, typically: wait a little, and say so now and then.
                if let Some(events) = failed.event(Instant::now()) {
                    warn!("dns: tcp accept failed ({events} times since the last report): {e}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admission = match table.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(refusal) => {
                drop(stream); // closed at once: the client may try again, or elsewhere
                if let Some(events) = refused.event(Instant::now()) {
                    let why = match refusal {
                        Refusal::AddressFull => format!(
                            "{} open from one address",
                            limits.tcp_connections_per_address
                        ),
                        Refusal::ServerFull => format!("{} open", limits.tcp_connections),
                    };
                    warn!(
                        "dns: refused {events} TCP connections since the last report (latest from {}: {why})",
                        peer.ip()
                    );
                }
                continue;
            }
        };
        let may_transfer = secondaries.contains(&peer.ip());
        let zone = zone.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, &zone, may_transfer, limits.tcp_timeout).await
            {
                debug!("dns: tcp connection from {peer} ended: {e}");
            }
            drop(admission);
        });
    }
}

/// RFC 7766: length-prefixed messages, several per connection, until EOF, an idle read or a
/// write the client does not take within `timeout`.
async fn serve_connection(
    mut stream: TcpStream,
    zone: &ZoneHandle,
    may_transfer: bool,
    timeout: Duration,
) -> std::io::Result<()> {
    loop {
        let mut prefix = [0u8; 2];
        match within(timeout, stream.read_exact(&mut prefix)).await {
            Ok(_) => {}
            // A client done (EOF) or idle: the normal end of a connection.
            Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::TimedOut) => {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let mut request = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        within(timeout, stream.read_exact(&mut request)).await?;
        let served = zone.current();
        let messages = respond(&served.zone, &request, Transport::Tcp { may_transfer });
        if messages.is_empty() {
            return Ok(()); // not worth an answer: close, as a client that sends garbage deserves
        }
        for message in messages {
            let Ok(length) = u16::try_from(message.len()) else {
                // Cannot be framed (answers are kept far smaller): hang up rather than lie.
                warn!(
                    "dns: a {}-byte answer does not fit a TCP message",
                    message.len()
                );
                return Ok(());
            };
            let mut framed = Vec::with_capacity(2 + message.len());
            framed.extend_from_slice(&length.to_be_bytes());
            framed.extend_from_slice(&message);
            within(timeout, stream.write_all(&framed)).await?;
        }
    }
}

/// `io`, or a `TimedOut` error once `timeout` has passed.
async fn within<T>(
    timeout: Duration,
    io: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(timeout, io)
        .await
        .map_err(|_| std::io::Error::new(ErrorKind::TimedOut, "deadline passed"))?
}

/// Sends NOTIFY (RFC 1996) for each new serial to every secondary, retrying a few times.
async fn notify_on_change(zone: ZoneHandle, secondaries: Vec<SocketAddr>) {
    if secondaries.is_empty() {
        return;
    }
    let mut changes = zone.serial.subscribe();
    while changes.changed().await.is_ok() {
        let serial = *changes.borrow_and_update();
        let origin = zone.current().zone.settings().origin.clone();
        for secondary in &secondaries {
            let (origin, secondary) = (origin.clone(), *secondary);
            tokio::spawn(async move {
                match notify(&origin, secondary).await {
                    Ok(()) => info!(%secondary, serial, "dns: secondary acknowledged NOTIFY"),
                    Err(e) => warn!(%secondary, serial, "dns: NOTIFY not acknowledged: {e}"),
                }
            });
        }
    }
}

async fn notify(origin: &str, secondary: SocketAddr) -> std::io::Result<()> {
    let bind: SocketAddr = if secondary.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("literal address");
    let socket = UdpSocket::bind(bind).await?;
    let mut name: Name = origin
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    name.set_fqdn(true);
    let id: u16 = rand_id();
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    message.add_query(Query::query(name, RecordType::SOA));
    let bytes = message
        .to_vec()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut buffer = [0u8; 512];
    for attempt in 0..5u32 {
        socket.send_to(&bytes, secondary).await?;
        let wait = Duration::from_millis(500 * u64::from(attempt + 1));
        if let Ok(Ok((len, _))) = tokio::time::timeout(wait, socket.recv_from(&mut buffer)).await
            && len >= 2
            && u16::from_be_bytes([buffer[0], buffer[1]]) == id
        {
            return Ok(());
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer after 5 tries",
    ))
}

/// A message id that an off-path attacker cannot guess easily; not a secret.
fn rand_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    #[allow(clippy::cast_possible_truncation)] // mixing bits: truncation intended
    let mixed = (nanos ^ (nanos >> 16) ^ std::process::id()) as u16;
    mixed
}
