//! The exporter's own health, for every account and endpoint alike: `kraken_up` and its timestamp, the
//! backoff, poll counts, durations and errors by reason, per-endpoint health, reloads and build
//! information. They name no endpoint: the endpoint whose table line says `decides_up` (the
//! balances) decides `kraken_up`.

use std::time::{Duration, SystemTime};

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Registry};

use super::{counter_vec, gauge_vec, unix_seconds, Changes};
use crate::kraken::ErrorReason;

/// The label values of a family without labels.
const NO_LABELS: &[&str] = &[];

/// Poll duration buckets in seconds, from a millisecond (a nearby simulator, a proxy's cache) through
/// Kraken's usual 0.1-0.5 s to timeouts.
const POLL_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub(super) struct Health {
    up: GaugeVec,
    last_success: GaugeVec,
    backoff: GaugeVec,
    poll_duration: HistogramVec,
    polls: IntCounterVec,
    poll_errors: IntCounterVec,
    endpoint_up: GaugeVec,
    endpoint_offered: GaugeVec,
    endpoint_errors: IntCounterVec,
    reload_successful: GaugeVec,
    reload_success_time: GaugeVec,
    task_restarts: IntCounterVec,
}

impl Health {
    pub(super) fn register(registry: &Registry) -> Self {
        let build_info = gauge_vec(
            registry,
            "kraken_exporter_build_info",
            "A metric with a constant '1' value labeled by version, revision and rustc version of kraken_exporter.",
            &["version", "revision", "rustc"],
        );
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("BUILD_GIT_REVISION"),
                env!("BUILD_RUSTC_VERSION"),
            ])
            .set(1.0);
        let poll_duration = HistogramVec::new(
            HistogramOpts::new(
                "kraken_poll_duration_seconds",
                "Duration of the account's balance polls, successful or not, in seconds.",
            )
            .buckets(POLL_DURATION_BUCKETS.to_vec()),
            &["account"],
        )
        .expect("histogram options are static and valid");
        registry
            .register(Box::new(poll_duration.clone()))
            .expect("each metric family is registered once");
        let health = Self {
            up: gauge_vec(registry, "kraken_up", "1 if the last poll of the account's balances succeeded, 0 if it failed or none has finished yet.", &["account"]),
            last_success: gauge_vec(registry, "kraken_last_success_timestamp_seconds", "Unix time of the last successful poll of the account's balances (0 before the first).", &["account"]),
            backoff: gauge_vec(registry, "kraken_backoff_seconds", "Seconds the account's poller waits before its next attempt because of failures (0 while polls succeed).", &["account"]),
            poll_duration,
            polls: counter_vec(registry, "kraken_polls_total", "Polls of the account's balances attempted, successful or not.", &["account"]),
            poll_errors: counter_vec(registry, "kraken_poll_errors_total", "Failed polls of the account's balances by reason (timeout, http, decode, invalid_key, invalid_signature, invalid_nonce, permission_denied, rate_limited, lockout, unavailable, api_error, not_offered).", &["account", "reason"]),
            endpoint_up: gauge_vec(registry, "kraken_endpoint_up", "1 if the last call of the account to this Kraken endpoint succeeded, 0 if it failed or none has finished yet.", &["account", "endpoint"]),
            endpoint_offered: gauge_vec(registry, "kraken_endpoint_offered", "1 once the account's call to this Kraken endpoint was answered, 0 while Kraken answers that it does not offer the endpoint to this account or region (kraken_endpoint_up is then absent: nothing is down).", &["account", "endpoint"]),
            endpoint_errors: counter_vec(registry, "kraken_endpoint_errors_total", "Failed calls by account, Kraken endpoint and reason.", &["account", "endpoint", "reason"]),
            reload_successful: gauge_vec(registry, "kraken_exporter_config_last_reload_successful", "1 if the last configuration reload (or the start) succeeded, 0 if it failed.", &[]),
            reload_success_time: gauge_vec(registry, "kraken_exporter_config_last_reload_success_timestamp_seconds", "Unix time of the last successful configuration reload (or of the start).", &[]),
            task_restarts: counter_vec(registry, "kraken_exporter_task_restarts_total", "Long-lived tasks (an account's poller, the price task) that ended unexpectedly and were started again.", &["task"]),
        };
        health
            .reload_successful
            .with_label_values(NO_LABELS)
            .set(1.0);
        health
            .reload_success_time
            .with_label_values(NO_LABELS)
            .set(unix_seconds(SystemTime::now()));
        health
    }

    /// Pre-creates an account's series (up = 0, error counters at 0), so `rate()` and `absent()` work
    /// from the first scrape.
    pub(super) fn add_account(&self, account: &str) {
        self.up.with_label_values(&[account]).set(0.0);
        self.last_success.with_label_values(&[account]).set(0.0);
        self.backoff.with_label_values(&[account]).set(0.0);
        self.polls.with_label_values(&[account]);
        self.poll_duration.with_label_values(&[account]);
        for reason in ErrorReason::ALL {
            self.poll_errors
                .with_label_values(&[account, reason.as_str()]);
        }
    }

    pub(super) fn remove_account(&self, account: &str) {
        let one: &[&str] = &[account];
        // Each was pre-created with the account; nothing to undo for one that is not there.
        let _ = self.up.remove_label_values(one);
        let _ = self.last_success.remove_label_values(one);
        let _ = self.backoff.remove_label_values(one);
        let _ = self.polls.remove_label_values(one);
        let _ = self.poll_duration.remove_label_values(one);
        for reason in ErrorReason::ALL {
            let _ = self
                .poll_errors
                .remove_label_values(&[account, reason.as_str()]);
        }
    }

    /// Creates an endpoint's health series (0 until its first answer; an existing one keeps its value).
    pub(super) fn add_endpoint(&self, account: &str, endpoint: &str) {
        self.endpoint_up.with_label_values(&[account, endpoint]);
        for reason in ErrorReason::ALL {
            self.endpoint_errors
                .with_label_values(&[account, endpoint, reason.as_str()]);
        }
    }

    pub(super) fn remove_endpoint(&self, account: &str, endpoint: &str) {
        let _ = self.endpoint_up.remove_label_values(&[account, endpoint]);
        let _ = self
            .endpoint_offered
            .remove_label_values(&[account, endpoint]);
        for reason in ErrorReason::ALL {
            let _ = self
                .endpoint_errors
                .remove_label_values(&[account, endpoint, reason.as_str()]);
        }
    }
}

impl Changes<'_> {
    /// Records one call of an endpoint: `kraken_endpoint_up` and, on failure, its error counter.
    pub fn record_endpoint(&mut self, account: &str, endpoint: &str, failure: Option<ErrorReason>) {
        let health = &self.metrics.health;
        health
            .endpoint_up
            .with_label_values(&[account, endpoint])
            .set(if failure.is_none() { 1.0 } else { 0.0 });
        health
            .endpoint_offered
            .with_label_values(&[account, endpoint])
            .set(1.0);
        if let Some(reason) = failure {
            health
                .endpoint_errors
                .with_label_values(&[account, endpoint, reason.as_str()])
                .inc();
        }
    }

    /// Records Kraken's answer that it does not offer `endpoint` to the account: no
    /// `kraken_endpoint_up` (nothing is down), `kraken_endpoint_offered` 0, no error counted.
    pub fn record_not_offered(&mut self, account: &str, endpoint: &str) {
        let health = &self.metrics.health;
        let _ = health.endpoint_up.remove_label_values(&[account, endpoint]);
        health
            .endpoint_offered
            .with_label_values(&[account, endpoint])
            .set(0.0);
    }

    /// Records a finished poll of the account's balances: its duration and, on failure, its reason;
    /// sets `kraken_up`.
    pub fn record_poll(&mut self, account: &str, duration: Duration, failure: Option<ErrorReason>) {
        let health = &self.metrics.health;
        health.polls.with_label_values(&[account]).inc();
        health
            .poll_duration
            .with_label_values(&[account])
            .observe(duration.as_secs_f64());
        match failure {
            None => {
                health.up.with_label_values(&[account]).set(1.0);
                health
                    .last_success
                    .with_label_values(&[account])
                    .set(unix_seconds(SystemTime::now()));
            }
            Some(reason) => {
                health.up.with_label_values(&[account]).set(0.0);
                health
                    .poll_errors
                    .with_label_values(&[account, reason.as_str()])
                    .inc();
            }
        }
    }

    /// Creates a task's restart counter at 0, so `increase()` counts its first restart too.
    pub fn declare_task(&mut self, task: &str) {
        self.metrics.health.task_restarts.with_label_values(&[task]);
    }

    /// Counts a task that ended unexpectedly and is started again.
    pub fn record_task_restart(&mut self, task: &str) {
        self.metrics
            .health
            .task_restarts
            .with_label_values(&[task])
            .inc();
    }

    /// Sets `kraken_up` to 0 (its poller is not running), keeping the last values.
    pub fn mark_down(&mut self, account: &str) {
        self.metrics
            .health
            .up
            .with_label_values(&[account])
            .set(0.0);
    }

    /// Sets the current failure backoff of an account (zero after a success).
    pub fn set_backoff(&mut self, account: &str, wait: Duration) {
        self.metrics
            .health
            .backoff
            .with_label_values(&[account])
            .set(wait.as_secs_f64());
    }

    /// Records a configuration reload: `kraken_exporter_config_last_reload_successful` and, on
    /// success, its timestamp.
    pub fn record_reload(&mut self, succeeded: bool) {
        let health = &self.metrics.health;
        health
            .reload_successful
            .with_label_values(NO_LABELS)
            .set(if succeeded { 1.0 } else { 0.0 });
        if succeeded {
            health
                .reload_success_time
                .with_label_values(NO_LABELS)
                .set(unix_seconds(SystemTime::now()));
        }
    }
}
