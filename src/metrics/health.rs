//! The exporter's own health, for every account and endpoint alike: `kraken_up` and its timestamp, the
//! backoff, poll counts, durations and errors by reason, per-endpoint health, reloads and build
//! information. They name no endpoint: the endpoint whose table line says `decides_up` (the
//! balances) decides `kraken_up`.

use std::time::{Duration, SystemTime};

use super::series::{register_in, AccountSeries, Histogram, Kind, Scope};
use super::{unix_seconds, Changes, State};
use crate::kraken::ErrorReason;

/// Poll duration buckets in seconds, from a millisecond (a nearby simulator, a proxy's cache) through
/// Kraken's usual 0.1-0.5 s to timeouts.
const POLL_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The label values of a family without labels.
fn none() -> Vec<String> {
    Vec::new()
}

fn one(value: &str) -> Vec<String> {
    vec![value.to_string()]
}

pub(super) struct Health {
    build_info: AccountSeries,
    up: AccountSeries,
    last_success: AccountSeries,
    backoff: AccountSeries,
    poll_duration: Histogram,
    polls: AccountSeries,
    poll_errors: AccountSeries,
    endpoint_up: AccountSeries,
    endpoint_offered: AccountSeries,
    endpoint_errors: AccountSeries,
    reload_successful: AccountSeries,
    reload_success_time: AccountSeries,
    task_restarts: AccountSeries,
}

impl Health {
    /// Registers the health families, first in the exposition, and sets the build information.
    pub(super) fn register(state: &mut State) -> Self {
        let account = Scope::Account;
        let global = Scope::Global;
        let gauge = |state: &mut State, scope, name: &str, help: &str, labels: &[&str]| {
            register_in(state, Kind::Gauge, scope, name, help, labels)
        };
        let counter = |state: &mut State, scope, name: &str, help: &str, labels: &[&str]| {
            register_in(state, Kind::Counter, scope, name, help, labels)
        };
        let build_info = gauge(state, global, "kraken_exporter_build_info", "A metric with a constant '1' value labeled by version, revision and rustc version of kraken_exporter.", &["version", "revision", "rustc"]);
        Self {
            build_info,
            up: gauge(state, account, "kraken_up", "1 if the last poll of the account's balances succeeded, 0 if it failed or none has finished yet.", &[]),
            last_success: gauge(state, account, "kraken_last_success_timestamp_seconds", "Unix time of the last successful poll of the account's balances (0 before the first).", &[]),
            backoff: gauge(state, account, "kraken_backoff_seconds", "Seconds the account's poller waits before its next attempt because of failures (0 while polls succeed).", &[]),
            poll_duration: Histogram::register(state, "kraken_poll_duration_seconds", "Duration of the account's balance polls, successful or not, in seconds.", POLL_DURATION_BUCKETS),
            polls: counter(state, account, "kraken_polls_total", "Polls of the account's balances attempted, successful or not.", &[]),
            poll_errors: counter(state, account, "kraken_poll_errors_total", "Failed polls of the account's balances by reason (timeout, http, decode, invalid_key, invalid_signature, invalid_nonce, permission_denied, rate_limited, lockout, unavailable, api_error, not_offered).", &["reason"]),
            endpoint_up: gauge(state, account, "kraken_endpoint_up", "1 if the last call of the account to this Kraken endpoint succeeded, 0 if it failed or none has finished yet.", &["endpoint"]),
            endpoint_offered: gauge(state, account, "kraken_endpoint_offered", "1 once the account's call to this Kraken endpoint was answered, 0 while Kraken answers that it does not offer the endpoint to this account or region (kraken_endpoint_up is then absent: nothing is down).", &["endpoint"]),
            endpoint_errors: counter(state, account, "kraken_endpoint_errors_total", "Failed calls by account, Kraken endpoint and reason.", &["endpoint", "reason"]),
            reload_successful: gauge(state, global, "kraken_exporter_config_last_reload_successful", "1 if the last configuration reload (or the start) succeeded, 0 if it failed.", &[]),
            reload_success_time: gauge(state, global, "kraken_exporter_config_last_reload_success_timestamp_seconds", "Unix time of the last successful configuration reload (or of the start).", &[]),
            task_restarts: counter(state, global, "kraken_exporter_task_restarts_total", "Long-lived tasks (an account's poller, the price task) that ended unexpectedly and were started again.", &["task"]),
        }
    }
}

impl Changes<'_> {
    /// Pre-creates an account's series (up = 0, error counters at 0), so `rate()` and `absent()` work
    /// from the first scrape.
    pub(super) fn add_account_health(&mut self, account: &str) {
        let metrics = self.metrics;
        let health = &metrics.health;
        health.up.set(self, account, none(), 0.0);
        health.last_success.set(self, account, none(), 0.0);
        health.backoff.set(self, account, none(), 0.0);
        health.polls.add(self, account, none(), 0.0);
        health.poll_duration.declare(self, account);
        for reason in ErrorReason::ALL {
            health
                .poll_errors
                .add(self, account, one(reason.as_str()), 0.0);
        }
    }

    /// Creates an endpoint's health series (`kraken_endpoint_up` 0 until its first answer; an existing
    /// one keeps its value).
    pub(super) fn add_endpoint_health(&mut self, account: &str, endpoint: &str) {
        let metrics = self.metrics;
        let health = &metrics.health;
        if health
            .endpoint_up
            .value(self, account, &one(endpoint))
            .is_none()
            && health
                .endpoint_offered
                .value(self, account, &one(endpoint))
                .is_none()
        {
            health.endpoint_up.set(self, account, one(endpoint), 0.0);
        }
        // `kraken_endpoint_errors_total` is created by an endpoint's first failure of a reason: at 12
        // reasons for every endpoint of every account, zeros made a sixth of a large scrape. The
        // alerts read `kraken_endpoint_up`; `kraken_poll_errors_total` (the balances) is created at 0.
    }

    pub(super) fn remove_endpoint_health(&mut self, account: &str, endpoint: &str) {
        let metrics = self.metrics;
        let health = &metrics.health;
        health.endpoint_up.remove(self, account, &one(endpoint));
        health
            .endpoint_offered
            .remove(self, account, &one(endpoint));
        for reason in ErrorReason::ALL {
            health.endpoint_errors.remove(
                self,
                account,
                &[endpoint.to_string(), reason.as_str().to_string()],
            );
        }
    }

    /// Sets the build information and the start as the last successful reload.
    pub(super) fn init_health(&mut self) {
        let metrics = self.metrics;
        let health = &metrics.health;
        health.build_info.set(
            self,
            "",
            vec![
                env!("CARGO_PKG_VERSION").to_string(),
                env!("BUILD_GIT_REVISION").to_string(),
                env!("BUILD_RUSTC_VERSION").to_string(),
            ],
            1.0,
        );
        self.record_reload(true);
    }

    /// Records one call of an endpoint: `kraken_endpoint_up` and, on failure, its error counter.
    pub fn record_endpoint(&mut self, account: &str, endpoint: &str, failure: Option<ErrorReason>) {
        let metrics = self.metrics;
        let health = &metrics.health;
        let up = if failure.is_none() { 1.0 } else { 0.0 };
        health.endpoint_up.set(self, account, one(endpoint), up);
        health
            .endpoint_offered
            .set(self, account, one(endpoint), 1.0);
        if let Some(reason) = failure {
            health.endpoint_errors.add(
                self,
                account,
                vec![endpoint.to_string(), reason.as_str().to_string()],
                1.0,
            );
        }
    }

    /// Records Kraken's answer that it does not offer `endpoint` to the account: no
    /// `kraken_endpoint_up` (nothing is down), `kraken_endpoint_offered` 0, no error counted.
    pub fn record_not_offered(&mut self, account: &str, endpoint: &str) {
        let metrics = self.metrics;
        let health = &metrics.health;
        health.endpoint_up.remove(self, account, &one(endpoint));
        health
            .endpoint_offered
            .set(self, account, one(endpoint), 0.0);
    }

    /// Records a finished poll of the account's balances: its duration and, on failure, its reason;
    /// sets `kraken_up`.
    pub fn record_poll(&mut self, account: &str, duration: Duration, failure: Option<ErrorReason>) {
        let metrics = self.metrics;
        let health = &metrics.health;
        health.polls.add(self, account, none(), 1.0);
        health
            .poll_duration
            .observe(self, account, duration.as_secs_f64());
        match failure {
            None => {
                health.up.set(self, account, none(), 1.0);
                health
                    .last_success
                    .set(self, account, none(), unix_seconds(SystemTime::now()));
            }
            Some(reason) => {
                health.up.set(self, account, none(), 0.0);
                health
                    .poll_errors
                    .add(self, account, one(reason.as_str()), 1.0);
            }
        }
    }

    /// Creates a task's restart counter at 0, so `increase()` counts its first restart too.
    pub fn declare_task(&mut self, task: &str) {
        let metrics = self.metrics;
        metrics.health.task_restarts.add(self, "", one(task), 0.0);
    }

    /// Counts a task that ended unexpectedly and is started again.
    pub fn record_task_restart(&mut self, task: &str) {
        let metrics = self.metrics;
        metrics.health.task_restarts.add(self, "", one(task), 1.0);
    }

    /// Sets `kraken_up` to 0 (its poller is not running), keeping the last values.
    pub fn mark_down(&mut self, account: &str) {
        let metrics = self.metrics;
        metrics.health.up.set(self, account, none(), 0.0);
    }

    /// Sets the current failure backoff of an account (zero after a success).
    pub fn set_backoff(&mut self, account: &str, wait: Duration) {
        let metrics = self.metrics;
        metrics
            .health
            .backoff
            .set(self, account, none(), wait.as_secs_f64());
    }

    /// Records a configuration reload: `kraken_exporter_config_last_reload_successful` and, on
    /// success, its timestamp.
    pub fn record_reload(&mut self, succeeded: bool) {
        let metrics = self.metrics;
        let health = &metrics.health;
        let value = if succeeded { 1.0 } else { 0.0 };
        health.reload_successful.set(self, "", none(), value);
        if succeeded {
            health
                .reload_success_time
                .set(self, "", none(), unix_seconds(SystemTime::now()));
        }
    }
}
