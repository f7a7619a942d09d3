//! Integration tests: the real application and binary against the simulated Kraken, scraped over HTTP.

mod binary;
mod deploy;
mod docs;
mod failures;
mod first_hour;
mod futures;
mod golden;
mod hardening;
mod helpers;
mod key_info;
mod ledger;
mod lifecycle;
mod margin_earn;
mod pager;
mod prometheus_e2e;
mod promtool;
mod properties;
mod resilience;
mod scenario;
mod secrets;
mod server;
mod spendable;
mod status_page;
mod valuation;
mod web;
