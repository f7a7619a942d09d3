//! Reloading the configuration: one [`ReloadHandle`] that SIGHUP ([`reload_on_sighup`]) and
//! `POST /-/reload` (the server) both use, and the loop that applies requests one at a time
//! ([`apply_reloads`]) to the running configuration.
//!
//! A reload reads the configuration again ([`ReloadSource`]) and replaces what runs as a whole (see
//! `running`); when reading or building fails, the running configuration is left alone, the log says
//! why and `kraken_exporter_config_last_reload_successful` drops to 0.
//!
//! Reloads are coalesced and paced: requests that arrive while one is applied, or within
//! [`MIN_RELOAD_INTERVAL`] of the last, are answered together by one reload, so a storm of SIGHUPs or
//! POSTs becomes at most one reload per interval. A reload never polls an account earlier than its
//! schedule and backoff allow (`running` keeps each key's next poll across reloads).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::polling::running::Running;

/// The shortest time between two reloads; requests in between share the next one.
pub const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// How long a reload may take to read its files (a hung mount never answers); past it the reload
/// fails and the running configuration stays.
pub const RELOAD_READ_DEADLINE: Duration = Duration::from_secs(10);

/// Where a reload reads the configuration from (the file and the environment taken at start).
pub type ReloadSource = Box<dyn Fn() -> Result<Settings, String> + Send + Sync>;

/// A request to reload the configuration, answered with the outcome.
struct ReloadRequest {
    done: oneshot::Sender<Result<(), String>>,
}

/// Asks for reloads; cheap to clone.
#[derive(Clone, Debug)]
pub struct ReloadHandle {
    requests: mpsc::Sender<ReloadRequest>,
}

/// What a reload request came to.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    Reloaded,
    Failed(String),
    /// The exporter is shutting down; nothing was reloaded.
    ShuttingDown,
}

impl ReloadHandle {
    /// Asks for a reload without waiting for its outcome (which is logged); `false` once the
    /// exporter is shutting down.
    pub async fn request(&self) -> bool {
        self.send().await.is_some()
    }

    /// Reloads and waits for the outcome.
    pub async fn reload(&self) -> ReloadOutcome {
        let Some(outcome) = self.send().await else {
            return ReloadOutcome::ShuttingDown;
        };
        match outcome.await {
            Ok(Ok(())) => ReloadOutcome::Reloaded,
            Ok(Err(error)) => ReloadOutcome::Failed(error),
            Err(_) => ReloadOutcome::ShuttingDown,
        }
    }

    /// Queues a request; its outcome arrives on the receiver, `None` once shutting down.
    async fn send(&self) -> Option<oneshot::Receiver<Result<(), String>>> {
        let (done, outcome) = oneshot::channel();
        self.requests.send(ReloadRequest { done }).await.ok()?;
        Some(outcome)
    }
}

/// The requests a [`ReloadHandle`] sends, for [`apply_reloads`].
pub struct ReloadRequests(mpsc::Receiver<ReloadRequest>);

/// A handle and the requests it sends.
pub fn channel() -> (ReloadHandle, ReloadRequests) {
    let (requests, received) = mpsc::channel(4);
    (ReloadHandle { requests }, ReloadRequests(received))
}

/// Applies reload requests one at a time until `stop` changes, then stops the running configuration.
pub(crate) async fn apply_reloads(
    mut running: Running,
    source: ReloadSource,
    metrics: Arc<Metrics>,
    ReloadRequests(mut requests): ReloadRequests,
    mut stop: watch::Receiver<bool>,
) {
    let source = Arc::new(source);
    let mut last: Option<Instant> = None;
    loop {
        let first = tokio::select! {
            request = requests.recv() => match request {
                Some(request) => request,
                None => break,
            },
            _ = stop.changed() => break,
        };
        let mut waiting = vec![first];
        // Paced: requests until the window is over join this reload.
        if let Some(at) = last.map(|at| at + MIN_RELOAD_INTERVAL) {
            let window = tokio::time::sleep_until(at);
            tokio::pin!(window);
            loop {
                tokio::select! {
                    () = &mut window => break,
                    request = requests.recv() => match request {
                        Some(request) => waiting.push(request),
                        None => break,
                    },
                    _ = stop.changed() => {
                        running.stop().await;
                        return;
                    }
                }
            }
        }
        while let Ok(request) = requests.try_recv() {
            waiting.push(request);
        }
        let outcome = reload(&mut running, &source).await;
        last = Some(Instant::now());
        match &outcome {
            Ok(()) => tracing::info!(requests = waiting.len(), "configuration reloaded"),
            Err(error) => {
                tracing::error!(%error, "configuration reload failed; the running configuration is unchanged")
            }
        }
        metrics.update(|m| m.record_reload(outcome.is_ok()));
        for request in waiting {
            let _ = request.done.send(outcome.clone());
        }
    }
    running.stop().await;
}

async fn reload(running: &mut Running, source: &Arc<ReloadSource>) -> Result<(), String> {
    // In a thread of its own, so a read that never returns costs that thread, not the reloads.
    let read = tokio::task::spawn_blocking({
        let source = Arc::clone(source);
        move || source()
    });
    let settings = match tokio::time::timeout(RELOAD_READ_DEADLINE, read).await {
        Ok(Ok(read)) => read?,
        Ok(Err(_)) => return Err("reading the configuration failed unexpectedly".to_string()),
        Err(_) => {
            return Err(format!(
                "reading the configuration took longer than {} s (a file on a mount that hangs?); nothing was changed",
                RELOAD_READ_DEADLINE.as_secs()
            ))
        }
    };
    running
        .start(&settings)
        .await
        .map_err(|err| format!("{err:#}"))?;
    tracing::info!(settings = %settings.summary(), "configuration applied");
    crate::collectors::log_rate_warnings(&settings);
    Ok(())
}

/// Asks for a reload on every SIGHUP, until `stop` changes.
pub async fn reload_on_sighup(reloads: ReloadHandle, mut stop: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reload through POST /-/reload instead");
            return;
        };
        loop {
            tokio::select! {
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading the configuration");
                    if !reloads.request().await {
                        return;
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (reloads, stop.changed().await);
    }
}
