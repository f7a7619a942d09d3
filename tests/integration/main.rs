//! Integration tests: the real application and binary against the simulated Kraken, scraped over HTTP.

mod binary;
mod failures;
mod helpers;
mod promtool;
mod scenario;
mod server;
