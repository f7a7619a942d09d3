//! `kraken_exporter`: a Prometheus exporter for Kraken account balances.
//!
//! Data flows one way: [`config`] -> [`kraken`] client -> [`polling`] walking each account's
//! [`collectors`] (and the price task, through the valuation) -> [`metrics`] -> the server. The server
//! never calls Kraken, the client knows nothing of Prometheus, and a state change is published in one
//! place ([`metrics::Metrics::update`]).
//!
//! Module map (`pub` modules are the surface the binary, the tests, the benches and the fuzz targets
//! use; the rest is `pub(crate)`):
//! - [`app`]: `Application::build` / `run_until_stopped`, `--once`, `--check-config`; [`telemetry`]: logging;
//!   [`polling::reload`]: the one reload handle for SIGHUP and `/-/reload`; [`polling::running`]:
//!   the running configuration and [`polling::running::build`], the one way pollers are made.
//! - [`config`]: schema, validation, secrets, environment; [`web_config`]: the exporter-toolkit web
//!   configuration (parser, TLS, one file reloader).
//! - [`kraken`]: signing, nonces, the signed call, error reasons, asset names, and one module per
//!   endpoint (`balance_ex`, `trade_balance`, `earn_allocations`, `public`).
//! - [`collectors`]: one collector per endpoint with the families it feeds, and the one table of
//!   endpoints ([`collectors::ENDPOINTS`]).
//! - [`polling`]: per account ([`polling::poller`]), a drift-free schedule per endpoint
//!   ([`polling::schedule`]) walking its collectors in sequence, with one
//!   health record per endpoint; [`readiness`] records first successes for `/ready`.
//! - [`metrics`]: generic machinery only (family kinds, per-account series, the exporter's own
//!   health, the one publisher); `exposition` renders by hand.
//! - [`server`] and [`listener`]: routes, guards (auth, headers, limits) and the accept loop;
//!   [`prices`] and [`valuation`]: balances valued in quote currencies.
//! - [`simulator`]: the simulated Kraken (private, public, faults) used by `--demo` and the tests;
//!   [`demo`]: the demo accounts.

pub mod app;
pub mod collectors;
pub mod config;
pub mod demo;
pub(crate) mod exposition;
pub mod fair_slots;
pub(crate) mod files;
pub mod kraken;
pub mod listener;
pub mod metrics;
pub mod polling;
pub mod prices;
pub mod readiness;
pub mod server;
pub mod simulator;
pub mod spendable;
pub mod status;
pub(crate) mod sync;
pub mod telemetry;
pub mod valuation;
pub mod warn_once;
pub mod web_config;
