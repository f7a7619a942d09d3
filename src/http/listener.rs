//! The accept loop: plain TCP or TLS, HTTP/1.1, with the limits that keep `/metrics` fast for Prometheus
//! whatever other clients do, and a graceful shutdown.
//!
//! - At most [`MAX_PER_ADDRESS`] connections from one IP address (an IPv6 /64 counts as one address,
//!   as one host holds all of it), so one address cannot take the slots everyone else needs. When an
//!   address is at its share, its connections with no request in progress give way to a newcomer
//!   from the same address, oldest first: first those that never sent a request though they had
//!   [`FIRST_REQUEST_GRACE`] to do so, then those that did, and last those still within it (in
//!   their TLS handshake or about to send their first request). So a scraper behind the same NAT,
//!   sidecar or proxy as a client that opens idle connections still gets in, and its new connection
//!   is not the one the next newcomer pushes out. Only when every one of them is serving a request
//!   is the newcomer closed at once.
//! - At most [`MAX_CONNECTIONS`] connections in all. When they are taken, a newcomer from an address
//!   with fewer connections than the busiest one is let in and the busiest address's oldest idle
//!   connection (or, if all are busy, its oldest) is asked to close after its current response (at
//!   once if it is idle); when no address has more than one connection more than the newcomer's
//!   (many addresses with one each), the idle connection that gives way is chosen among all
//!   addresses in the same order. A newcomer from the busiest address itself is closed. Connections asked to close still
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
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::atomic::{AtomicBool, Ordering};
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
/// How long a new connection may take for its TLS handshake and first request before, still
/// without one, it is among the first to give way to a newcomer.
pub const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(2);
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
        let address = fairness_address(peer.ip());
        let Some(admitted) = lock(&connections).admit(address) else {
            tracing::debug!(%address, "connection refused: the address has its share of connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = tracked(router.clone(), Arc::clone(&admitted.activity), address);
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

/// The address connections are counted under: an IPv4 address as it is, an IPv6 address as its /64
/// (one host is given a whole /64 and can use any address of it), an IPv4-mapped IPv6 address as
/// its IPv4 address.
pub fn fairness_address(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
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

/// What the accept loop knows of a connection's requests, set by its service.
#[derive(Default)]
struct Activity {
    /// A request is being handled.
    busy: AtomicBool,
    /// At least one request was received.
    served: AtomicBool,
}

/// The address a request came from, in its extensions (for fairness between clients).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

/// The router as a hyper service that keeps `activity` up to date: busy from a request's arrival
/// until its response is ready. Each request carries its [`ClientAddress`].
fn tracked(
    router: Router,
    activity: Arc<Activity>,
    address: IpAddr,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let router = router.clone();
        let activity = Arc::clone(&activity);
        async move {
            let _busy = BusyWhile::new(&activity);
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ClientAddress(address));
            tower::ServiceExt::oneshot(router, request).await
        }
    })
}

/// Marks a connection busy while it lives.
struct BusyWhile<'a>(&'a Activity);

impl<'a> BusyWhile<'a> {
    fn new(activity: &'a Activity) -> Self {
        activity.served.store(true, Ordering::Relaxed);
        activity.busy.store(true, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for BusyWhile<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Relaxed);
    }
}

/// One admitted connection: its id, the signal that asks it to close and what its service reports.
struct Admitted {
    id: u64,
    close: Arc<Notify>,
    activity: Arc<Activity>,
}

/// One open connection as the table keeps it.
#[derive(Clone)]
struct Open {
    id: u64,
    close: Arc<Notify>,
    activity: Arc<Activity>,
    /// Asked to close (it still counts until it is gone).
    leaving: bool,
    opened_at: Instant,
}

impl Open {
    fn idle(&self) -> bool {
        !self.leaving && !self.activity.busy.load(Ordering::Relaxed)
    }

    /// Asks it to close after its current response (at once if it is idle).
    fn ask_to_close(&mut self) {
        self.leaving = true;
        self.close.notify_one();
    }

    /// Which idle connections give way first (lower first), or `None` if it is not idle: those
    /// that never sent a request in their grace, then those that did, then those still in it.
    fn giving_way_class(&self, now: Instant) -> Option<u8> {
        if !self.idle() {
            return None;
        }
        let served = self.activity.served.load(Ordering::Relaxed);
        let in_grace = now.saturating_duration_since(self.opened_at) < FIRST_REQUEST_GRACE;
        Some(match (served, in_grace) {
            (false, false) => 0,
            (true, _) => 1,
            (false, true) => 2,
        })
    }
}

/// The connections of one address not asked to close.
fn staying(open: &VecDeque<Open>) -> usize {
    open.iter().filter(|c| !c.leaving).count()
}

/// The idle connection of one address that gives way first: the lowest
/// [`Open::giving_way_class`], oldest within it; with its order and its position.
fn first_to_give_way(open: &VecDeque<Open>, now: Instant) -> Option<((u8, Instant), usize)> {
    open.iter()
        .enumerate()
        .filter_map(|(at, c)| Some(((c.giving_way_class(now)?, c.opened_at), at)))
        .min()
}

/// The open connections by address, oldest first.
#[derive(Default)]
struct Connections {
    by_address: HashMap<IpAddr, VecDeque<Open>>,
    total: usize,
    next_id: u64,
}

impl Connections {
    /// Admits a connection from `address`, or `None` to close it at once (see the module docs).
    fn admit(&mut self, address: IpAddr) -> Option<Admitted> {
        self.admit_at(address, Instant::now())
    }

    /// [`Connections::admit`] at `now`.
    fn admit_at(&mut self, address: IpAddr, now: Instant) -> Option<Admitted> {
        if self.total >= MAX_CONNECTIONS + EVICTION_SLACK {
            return None;
        }
        let mine = self.staying(&address);
        if mine >= MAX_PER_ADDRESS {
            // The address's idle connections give way to its newcomer.
            if !self.ask_to_leave(address, true, now) {
                return None;
            }
        } else if self.total_staying() >= MAX_CONNECTIONS {
            let busiest = self
                .by_address
                .keys()
                .map(|busiest| (*busiest, self.staying(busiest)))
                .max_by_key(|(_, count)| *count);
            match busiest {
                Some((busiest, count)) if count > mine + 1 && busiest != address => {
                    if !self.ask_to_leave(busiest, true, now) {
                        self.ask_to_leave(busiest, false, now);
                    }
                }
                // No address stands out (many with one connection each): an idle one of the
                // addresses with more connections than the newcomer's gives way, chosen among all.
                Some((_, count)) if count > mine => {
                    if !self.ask_any_to_leave(mine, now) {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let close = Arc::new(Notify::new());
        let activity = Arc::new(Activity::default());
        self.by_address.entry(address).or_default().push_back(Open {
            id,
            close: Arc::clone(&close),
            activity: Arc::clone(&activity),
            leaving: false,
            opened_at: now,
        });
        self.total += 1;
        Some(Admitted {
            id,
            close,
            activity,
        })
    }

    /// Connections of `address` not asked to close.
    fn staying(&self, address: &IpAddr) -> usize {
        self.by_address.get(address).map_or(0, staying)
    }

    fn total_staying(&self) -> usize {
        self.by_address
            .values()
            .flatten()
            .filter(|c| !c.leaving)
            .count()
    }

    /// Asks one connection of `address` to close: with `idle_only`, the idle one that gives way
    /// first ([`first_to_give_way`]); otherwise its oldest. Whether one was asked.
    fn ask_to_leave(&mut self, address: IpAddr, idle_only: bool, now: Instant) -> bool {
        let Some(open) = self.by_address.get_mut(&address) else {
            return false;
        };
        let chosen = if idle_only {
            first_to_give_way(open, now).map(|(_, at)| at)
        } else {
            open.iter().position(|c| !c.leaving)
        };
        let Some(at) = chosen else {
            return false;
        };
        open[at].ask_to_close();
        true
    }

    /// Asks the idle connection that gives way first ([`first_to_give_way`]) among the addresses
    /// with more than `mine` connections to close. Whether one was asked.
    fn ask_any_to_leave(&mut self, mine: usize, now: Instant) -> bool {
        let chosen = self
            .by_address
            .iter_mut()
            .filter(|(_, open)| staying(open) > mine)
            .filter_map(|(_, open)| Some((first_to_give_way(open, now)?, open)))
            .min_by_key(|((order, _), _)| *order);
        let Some(((_, at), open)) = chosen else {
            return false;
        };
        open[at].ask_to_close();
        true
    }

    fn release(&mut self, address: IpAddr, id: u64) {
        if let Some(open) = self.by_address.get_mut(&address) {
            if let Some(at) = open.iter().position(|c| c.id == id) {
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

    /// Whether `notify_one` was called on the connection's signal (a stored permit).
    fn asked_to_close(open: &Open) -> bool {
        let notified = open.close.notified();
        tokio::pin!(notified);
        notified.as_mut().enable()
    }

    fn busy(admitted: &Admitted) {
        admitted.activity.served.store(true, Ordering::Relaxed);
        admitted.activity.busy.store(true, Ordering::Relaxed);
    }

    #[test]
    fn one_address_gets_at_most_its_share_of_busy_connections() {
        let mut connections = Connections::default();
        for _ in 0..MAX_PER_ADDRESS {
            busy(&connections.admit(ip(1)).unwrap());
        }
        assert!(
            connections.admit(ip(1)).is_none(),
            "every one is serving a request"
        );
        assert!(connections.admit(ip(2)).is_some());
    }

    #[test]
    fn at_its_share_an_addresss_idle_connections_give_way_oldest_first() {
        let mut connections = Connections::default();
        // Prometheus's keep-alive connection (served before, idle between scrapes), then 63 idle
        // connections that never sent a request, all from one address.
        let start = Instant::now();
        let scraper = connections.admit_at(ip(1), start).unwrap();
        scraper.activity.served.store(true, Ordering::Relaxed);
        let idle: Vec<Admitted> = (1..MAX_PER_ADDRESS)
            .map(|_| connections.admit_at(ip(1), start).unwrap())
            .collect();
        // Past their grace, a newcomer from the same address gets in; the oldest never-served idle
        // one is asked to go.
        let later_on = start + FIRST_REQUEST_GRACE;
        let newcomer = connections
            .admit_at(ip(1), later_on)
            .expect("an idle connection gives way");
        let open = &connections.by_address[&ip(1)];
        let asked: Vec<u64> = open
            .iter()
            .filter(|c| asked_to_close(c))
            .map(|c| c.id)
            .collect();
        assert_eq!(asked, [idle[0].id]);
        assert_eq!(connections.staying(&ip(1)), MAX_PER_ADDRESS);
        // Each newcomer takes the next never-served one: the idle connections go before the
        // scraper's, and the first newcomer, never served once its grace is over, goes before it
        // too (within its grace it would be the last to go).
        let mut later = Vec::new();
        for _ in 1..MAX_PER_ADDRESS - 1 {
            later.push(connections.admit_at(ip(1), later_on).unwrap());
        }
        let leaving = |connections: &Connections, id: u64| {
            connections.by_address[&ip(1)]
                .iter()
                .any(|c| c.id == id && c.leaving)
        };
        assert!(idle.iter().all(|c| leaving(&connections, c.id)));
        assert!(!leaving(&connections, scraper.id));
        // The first newcomer, never served past its own grace, goes next.
        later.push(
            connections
                .admit_at(ip(1), later_on + FIRST_REQUEST_GRACE)
                .unwrap(),
        );
        assert!(leaving(&connections, newcomer.id));
        assert!(!leaving(&connections, scraper.id));
        // With only served connections idle (the rest busy), the scraper's oldest one goes.
        for admitted in &later {
            busy(admitted);
        }
        let mut last = connections.admit(ip(1)).unwrap();
        assert!(leaving(&connections, scraper.id));
        busy(&last);
        // Once every staying connection is busy, a newcomer is refused.
        while let Some(admitted) = connections.admit(ip(1)) {
            busy(&admitted);
            last = admitted;
        }
        assert!(connections.admit(ip(1)).is_none());
        let _ = last;
        // Leaving connections count until they are gone: the bound on descriptors holds.
        let admitted = (0..10_000)
            .filter(|_| connections.admit(ip(1)).is_some())
            .count();
        assert!(
            connections.total <= MAX_CONNECTIONS + EVICTION_SLACK,
            "{admitted}"
        );
    }

    /// With TLS, a scraper's new connection has sent no request while it shakes hands; a flood at
    /// its address of connections that did (a request now and then) and reconnect at once when
    /// closed used to push it out first. Within its grace it is the last to go.
    #[test]
    fn a_connection_in_its_handshake_is_not_pushed_out_by_the_next_newcomer() {
        let mut connections = Connections::default();
        let start = Instant::now();
        let flood: Vec<Admitted> = (0..MAX_PER_ADDRESS)
            .map(|_| {
                let admitted = connections.admit_at(ip(1), start).unwrap();
                admitted.activity.served.store(true, Ordering::Relaxed);
                admitted
            })
            .collect();
        let now = start + Duration::from_secs(5);
        let scraper = connections
            .admit_at(ip(1), now)
            .expect("a served idle one gives way");
        // The flood reconnects at once, again and again, within the scraper's handshake.
        for n in 0..(MAX_PER_ADDRESS - 1) {
            assert!(
                connections.admit_at(ip(1), now).is_some(),
                "reconnection {n}"
            );
        }
        let scraper_leaving = connections.by_address[&ip(1)]
            .iter()
            .any(|c| c.id == scraper.id && c.leaving);
        assert!(
            !scraper_leaving,
            "the scraper's connection in its handshake stays"
        );
        assert!(flood.iter().all(|f| connections.by_address[&ip(1)]
            .iter()
            .any(|c| c.id == f.id && c.leaving)));
    }

    /// 512 addresses with one idle connection each used to lock every newcomer out: no address had
    /// more than one connection more than the newcomer's.
    #[test]
    fn when_full_of_single_connection_addresses_the_oldest_idle_one_gives_way() {
        let mut connections = Connections::default();
        let start = Instant::now();
        let address = |n: u32| IpAddr::from((0x7f00_0000 + 2 + n).to_be_bytes());
        let first = connections.admit_at(address(0), start).unwrap();
        for n in 1..MAX_CONNECTIONS as u32 {
            connections
                .admit_at(address(n), start + Duration::from_millis(1))
                .unwrap();
        }
        let now = start + Duration::from_secs(5);
        let scraper = connections.admit_at(IpAddr::from([127, 1, 0, 1]), now);
        assert!(scraper.is_some(), "a newcomer from a new address gets in");
        assert!(asked_to_close(&connections.by_address[&address(0)][0]));
        assert_eq!(first.id, connections.by_address[&address(0)][0].id);
        // An address already at the common count does not push others out.
        assert!(connections.admit_at(address(7), now).is_none());
    }

    #[test]
    fn an_ipv6_64_counts_as_one_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(fairness_address(a), fairness_address(b));
        assert_ne!(fairness_address(a), fairness_address(other));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(fairness_address(mapped), ip(1));
        assert_eq!(fairness_address(ip(9)), ip(9));
    }

    #[test]
    fn when_full_the_busiest_address_gives_way_to_a_lighter_one() {
        let mut connections = Connections::default();
        let per = MAX_PER_ADDRESS;
        let mut first = Vec::new();
        for address in 1..=(MAX_CONNECTIONS / per) as u8 {
            for _ in 0..per {
                let admitted = connections.admit(ip(address)).unwrap();
                // Serving requests: none is idle, so none gives way within its address.
                busy(&admitted);
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
            .filter(|c| asked_to_close(c))
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
