//! The accept loop: plain TCP or TLS, HTTP/1.1, with the limits that keep `/metrics` fast for Prometheus
//! whatever other clients do, and a graceful shutdown.
//!
//! - At most [`MAX_PER_ADDRESS`] connections from one IP address: a client that opens more gets each
//!   extra one closed at once, so one address cannot take the slots everyone else needs.
//! - At most [`MAX_CONNECTIONS`] connections in all. When they are taken (several addresses at their
//!   share), a newcomer from an address with fewer connections than the busiest one is let in and the
//!   busiest address's oldest connection is asked to close after its current response (at once if it
//!   is idle); a newcomer from the busiest address itself is closed. Connections asked to close still
//!   count until they are gone, and at [`MAX_CONNECTIONS`] + [`EVICTION_SLACK`] every newcomer is closed,
//!   so file descriptors stay bounded. Prometheus keeps one connection per target: it is never the
//!   busiest address unless it is the only client.
//! - Request headers must arrive within [`HEADER_READ_TIMEOUT`] (also on idle keep-alive connections),
//!   a TLS handshake within [`TLS_HANDSHAKE_TIMEOUT`], and a write that makes no progress for
//!   [`WRITE_TIMEOUT`] (a client that sends requests and never reads the answers) closes the connection,
//!   so idle, slow or stuck clients cannot hold slots.
//! - A connection's read buffer, so its request headers, is at most [`MAX_REQUEST_BUFFER`]: bigger
//!   headers get 431, and every slot taken holds about 9 MiB, not hundreds.
//! - On shutdown: stop accepting, let in-flight responses finish for up to [`SHUTDOWN_GRACE`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;

use crate::sync::lock;

pub const MAX_CONNECTIONS: usize = 512;
pub const MAX_PER_ADDRESS: usize = 64;
pub const EVICTION_SLACK: usize = 64;
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);
/// The read buffer of a connection, so the most its request headers may take (hyper's minimum is
/// 8 KiB): with every slot taken, about 9 MiB in all.
pub const MAX_REQUEST_BUFFER: usize = 16 * 1024;

/// Serves `router` on `listener` until `shutdown` resolves, then drains connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let connections = Arc::new(Mutex::new(Connections::default()));
    // Every connection task holds a sender; when all are gone, `recv` ends the drain.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let (stopping_tx, stopping) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // Request headers are small; a client sending partial huge ones holds at most this much
        // (hyper's default is about 400 KB per connection, 230 MB over every slot).
        .max_buf_size(MAX_REQUEST_BUFFER)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: pause instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let address = peer.ip();
        let Some(admitted) = lock(&connections).admit(address) else {
            tracing::debug!(%address, "connection refused: the address has its share of connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let connections = Arc::clone(&connections);
        let alive = alive.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let stream = WriteTimeout::new(stream, WRITE_TIMEOUT);
            match acceptor {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    run_connection(connection, &admitted.close, stopping).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            let connection =
                                builder.serve_connection(TokioIo::new(stream), service);
                            run_connection(connection, &admitted.close, stopping).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            lock(&connections).release(address, admitted.id);
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    drop(alive);
    if tokio::time::timeout(SHUTDOWN_GRACE, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the shutdown grace period");
    }
}

/// Serves one connection until it ends; asked to close (eviction or shutdown), it finishes the
/// response in flight and closes.
async fn run_connection<I, S, B>(
    connection: http1::Connection<I, S>,
    close: &Notify,
    mut stopping: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(connection);
    let mut closing = *stopping.borrow();
    if closing {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = close.notified(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = stopping.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// One admitted connection: its id and the signal that asks it to close.
struct Admitted {
    id: u64,
    close: Arc<Notify>,
}

/// The open connections by address, oldest first.
#[derive(Default)]
struct Connections {
    by_address: HashMap<IpAddr, VecDeque<(u64, Arc<Notify>)>>,
    total: usize,
    next_id: u64,
}

impl Connections {
    /// Admits a connection from `address`, or `None` to close it at once (see the module docs).
    fn admit(&mut self, address: IpAddr) -> Option<Admitted> {
        let mine = self.by_address.get(&address).map_or(0, VecDeque::len);
        if mine >= MAX_PER_ADDRESS || self.total >= MAX_CONNECTIONS + EVICTION_SLACK {
            return None;
        }
        if self.total >= MAX_CONNECTIONS {
            let busiest = self
                .by_address
                .iter()
                .max_by_key(|(_, open)| open.len())
                .map(|(busiest, open)| (*busiest, open.len()));
            match busiest {
                Some((busiest, count)) if count > mine + 1 && busiest != address => {
                    // Ask its oldest connection to go; skip any already asked (they are leaving).
                    if let Some((_, close)) = self.by_address.get_mut(&busiest).and_then(|open| {
                        let oldest = open.pop_front()?;
                        open.push_back(oldest.clone());
                        Some(oldest)
                    }) {
                        close.notify_one();
                    }
                }
                _ => return None,
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let close = Arc::new(Notify::new());
        self.by_address
            .entry(address)
            .or_default()
            .push_back((id, Arc::clone(&close)));
        self.total += 1;
        Some(Admitted { id, close })
    }

    fn release(&mut self, address: IpAddr, id: u64) {
        if let Some(open) = self.by_address.get_mut(&address) {
            if let Some(at) = open.iter().position(|(open_id, _)| *open_id == id) {
                open.remove(at);
                self.total -= 1;
            }
            if open.is_empty() {
                self.by_address.remove(&address);
            }
        }
    }
}

/// A stream whose writes fail with `TimedOut` once they have made no progress for `limit`: the peer
/// stopped reading, and its connection should not hold a slot for ever.
struct WriteTimeout<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write or flush is pending.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After a pending write: arm the timer if needed and fail once it expires.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client has not read the response for too long",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.pending(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.pending(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.pending(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_gets_at_most_its_share() {
        let mut connections = Connections::default();
        for _ in 0..MAX_PER_ADDRESS {
            assert!(connections.admit(ip(1)).is_some());
        }
        assert!(connections.admit(ip(1)).is_none());
        assert!(connections.admit(ip(2)).is_some());
    }

    #[test]
    fn when_full_the_busiest_address_gives_way_to_a_lighter_one() {
        let mut connections = Connections::default();
        let per = MAX_PER_ADDRESS;
        let mut first = Vec::new();
        for address in 1..=(MAX_CONNECTIONS / per) as u8 {
            for _ in 0..per {
                let admitted = connections.admit(ip(address)).unwrap();
                if address == 1 {
                    first.push(admitted);
                }
            }
        }
        assert_eq!(connections.total, MAX_CONNECTIONS);
        // A newcomer from an address already at the busiest count is refused...
        assert!(connections.admit(ip(1)).is_none());
        // ...one from a new address is let in, and a busiest address's oldest connection is asked to go.
        let newcomer = connections.admit(ip(200));
        assert!(newcomer.is_some());
        assert_eq!(connections.total, MAX_CONNECTIONS + 1);
        let asked: usize = connections
            .by_address
            .values()
            .flatten()
            .filter(|(_, close)| {
                // A stored permit means notify_one was called.
                let notified = close.notified();
                tokio::pin!(notified);
                notified.as_mut().enable()
            })
            .count();
        assert_eq!(asked, 1);
        // Releasing frees the count; a bound holds however many come.
        connections.release(ip(1), first[0].id);
        assert_eq!(connections.total, MAX_CONNECTIONS);
        let admitted = (0..1000u32)
            .filter(|i| {
                connections
                    .admit(IpAddr::from((1000 + i).to_be_bytes()))
                    .is_some()
            })
            .count();
        assert!(
            connections.total <= MAX_CONNECTIONS + EVICTION_SLACK,
            "{admitted}"
        );
    }
}
