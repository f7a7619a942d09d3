//! `kraken_exporter`: a Prometheus exporter for Kraken account balances.
//!
//! Data flows one way: [`config`] -> [`kraken`] client -> [`polling`] walking each account's
//! [`collectors`] (and the price task, through the valuation) -> [`metrics`] -> the server. The server
//! never calls Kraken, the client knows nothing of Prometheus, and a state change is published in one
//! place ([`metrics::Metrics::update`]).
//!
//! Module map (`pub` modules are the surface the binary, the tests, the benches and the fuzz targets
//! use; the rest is `pub(crate)`). The parts, each a folder:
//! - [`config`]: schema, validation, secrets, environment, and the endpoints' options carried for
//!   them ([`config::Options`]).
//! - [`kraken`]: signing, nonces, the signed call, error reasons, asset names, and one module per
//!   endpoint with its request and decoder (`balance_ex`, `trade_balance`, `earn_allocations`,
//!   `api_key`, `public`, `futures/`).
//! - [`collectors`]: the one table of endpoints ([`collectors::ENDPOINTS`]: method, permission, cost,
//!   interval, options, families) and one collector per endpoint beside it; how to add an endpoint is
//!   in docs/development.md.
//! - [`polling`]: the running configuration ([`polling::running::build`], the one way pollers are
//!   made), the per-account poller with a schedule and one health record per endpoint
//!   ([`polling::poller`]), backoff, and the one reload handle for SIGHUP and `/-/reload`
//!   ([`polling::reload`]).
//! - [`metrics`]: generic machinery only: every family rendered by hand per account, an update
//!   renders what it changed, a scrape joins the newest chunks.
//! - [`valuation`]: market data, prices and the valuation's families, fed holdings through one narrow
//!   port.
//! - [`http`]: the server (routes and guards), the listener, the status page, readiness and the web
//!   configuration. It never calls Kraken.
//! - [`simulator`]: the simulated Kraken used by `--demo` and the tests; [`demo`]: the demo accounts.
//! - [`app`]: `Application::build` / `run_until_stopped`, `--once`, `--check-config`; [`telemetry`]:
//!   logging; [`allocator`]: the C allocator's settings for a long-running process.

pub mod allocator;
pub mod app;
pub mod collectors;
pub mod config;
pub mod demo;
pub(crate) mod exposition;
pub(crate) mod files;
pub mod http;
pub mod kraken;
pub mod metrics;
pub mod polling;
pub mod simulator;
pub mod spendable;
pub(crate) mod sync;
pub mod telemetry;
pub mod valuation;
pub mod warn_once;
