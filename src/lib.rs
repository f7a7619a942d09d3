//! `kraken_exporter`: a Prometheus exporter for Kraken account balances.
//!
//! Data flows one way: [`config`] -> [`kraken`] client -> [`poller`] (and [`prices`], through
//! [`valuation`]) -> [`metrics`] (rendered by [`exposition`]) -> [`server`] (on [`listener`]).
//!
//! - [`config`]: typed settings from a TOML file and `KRAKEN_EXPORTER_*` variables; [`web_config`]: the
//!   exporter-toolkit web configuration (TLS, basic auth, headers).
//! - [`kraken`]: signing, nonces, the `BalanceEx` and public-data clients, asset names, error reasons.
//! - [`poller`]: one task per account on a drift-free schedule, with [`backoff`] after failures;
//!   [`readiness`] records first successes for `/ready`.
//! - [`prices`] and [`valuation`]: prices from Kraken's public API and balances valued in quote currencies.
//! - [`metrics`] and [`exposition`]: every metric family, rendered once per change and served as shared bytes.
//! - [`server`] and [`listener`]: the routes, the guards (auth, headers, limits) and the accept loop.
//! - [`app`]: wiring and lifecycle; [`telemetry`]: logging.
//! - [`demo`]: a simulated Kraken used by `--demo` and by the tests.

pub mod app;
pub mod backoff;
pub mod collectors;
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
pub mod simulator;
pub mod telemetry;
pub mod valuation;
pub mod web_config;
