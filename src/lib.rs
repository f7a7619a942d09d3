//! `kraken_exporter`: a Prometheus exporter for Kraken account balances.
//!
//! Data flows one way: [`config`] -> [`kraken`] client -> [`poller`] -> [`metrics`] -> [`server`].
//! [`demo`] is a simulated Kraken used by `--demo` and by the tests.

pub mod app;
pub mod backoff;
pub mod config;
pub mod demo;
pub mod exposition;
pub mod kraken;
pub mod listener;
pub mod metrics;
pub mod poller;
pub mod prices;
pub mod readiness;
pub mod server;
pub mod telemetry;
pub mod valuation;
pub mod web_config;
