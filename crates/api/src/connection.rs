//! The HTTP listener's limits, as the SMTP and DNS listeners have theirs: every read and every
//! write on a connection has a deadline (so a client that trickles its headers, never reads its
//! answer, or sits idle on a kept-alive connection is closed), and at most `max_connections`
//! are served at once (the next waits in the kernel's queue until one closes).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Deadlines and the connection cap of [`crate::serve`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// How long one read or one write may wait (also how long a kept-alive connection may idle).
    pub(crate) timeout: Duration,
    /// Connections served at once.
    pub(crate) max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            timeout: Duration::from_secs(30),
            max_connections: 256,
        }
    }
}

/// A TCP listener handing out [`TimedStream`]s, at most `max_connections` at a time.
#[derive(Debug)]
pub(crate) struct LimitedListener {
    listener: TcpListener,
    limits: ConnectionLimits,
    places: Arc<Semaphore>,
}

impl LimitedListener {
    pub(crate) fn new(listener: TcpListener, limits: ConnectionLimits) -> Self {
        let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        LimitedListener {
            listener,
            limits,
            places,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = TimedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TimedStream, SocketAddr) {
        let place = Arc::clone(&self.places)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, address) = axum::serve::Listener::accept(&mut self.listener).await;
        (
            TimedStream::new(stream, self.limits.timeout, place),
            address,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection whose reads and writes fail with `TimedOut` once one has waited `timeout`.
#[derive(Debug)]
pub(crate) struct TimedStream {
    stream: TcpStream,
    timeout: Duration,
    reading: Option<Pin<Box<Sleep>>>,
    writing: Option<Pin<Box<Sleep>>>,
    _place: OwnedSemaphorePermit,
}

impl TimedStream {
    fn new(stream: TcpStream, timeout: Duration, place: OwnedSemaphorePermit) -> Self {
        TimedStream {
            stream,
            timeout,
            reading: None,
            writing: None,
            _place: place,
        }
    }
}

/// `Ready` as the operation finished (and the deadline is cleared), or an error once the
/// deadline started at the first `Pending` has passed.
fn within<T>(
    result: Poll<io::Result<T>>,
    deadline: &mut Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    if result.is_ready() {
        *deadline = None;
        return result;
    }
    let sleep = deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
    match sleep.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the HTTP client took too long",
        ))),
        Poll::Pending => Poll::Pending,
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        within(result, &mut this.reading, this.timeout, cx)
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        within(result, &mut this.writing, this.timeout, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_flush(cx);
        within(result, &mut this.writing, this.timeout, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_shutdown(cx);
        within(result, &mut this.writing, this.timeout, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn served(limits: ConnectionLimits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let listener = LimitedListener::new(listener, limits);
        tokio::spawn(async move { axum::serve(listener, router).await });
        address
    }

    /// Reads until the server closes; panics if that takes longer than `limit`.
    async fn closed_within(stream: &mut TcpStream, limit: Duration) {
        let mut sink = [0u8; 1024];
        tokio::time::timeout(limit, async {
            while !matches!(stream.read(&mut sink).await, Ok(0) | Err(_)) {}
        })
        .await
        .expect("the server closes the connection");
    }

    #[tokio::test]
    async fn a_client_that_trickles_its_headers_is_closed_at_the_deadline() {
        let limits = ConnectionLimits {
            timeout: Duration::from_millis(300),
            max_connections: 4,
        };
        let address = served(limits).await;
        let mut slow = TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // Without the deadline this waits for the rest of the headers forever.
        closed_within(&mut slow, Duration::from_secs(10)).await;
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_place() {
        let limits = ConnectionLimits {
            timeout: Duration::from_secs(30),
            max_connections: 1,
        };
        let address = served(limits).await;
        let idle = TcpStream::connect(address).await.unwrap();
        let mut next = TcpStream::connect(address).await.unwrap();
        next.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let early = tokio::time::timeout(Duration::from_millis(500), next.read_to_end(&mut answer));
        assert!(
            early.await.is_err(),
            "answered while the only place was taken"
        );
        drop(idle);
        tokio::time::timeout(Duration::from_secs(10), next.read_to_end(&mut answer))
            .await
            .expect("served once the first connection is gone")
            .unwrap();
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    }
}
