//! The HTTP side: what serves `/metrics`, the status page, `/ready` and `/-/reload`, and nothing that
//! calls Kraken.
//!
//! - [`server`]: the routes and their guards (authentication, headers, limits); [`listener`]: the
//!   accept loop (TLS, per-address share, timeouts) with [`fair_slots`] for password checks.
//! - [`status`]: what the landing page shows of each account; [`readiness`]: the first successes
//!   behind `/ready`.
//! - [`web_config`]: the exporter-toolkit web configuration (parser, TLS, the one file reloader).

pub mod fair_slots;
pub mod listener;
pub mod readiness;
pub mod server;
pub mod status;
pub mod web_config;
