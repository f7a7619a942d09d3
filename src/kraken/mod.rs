//! The Kraken private REST client, split by concern.
//!
//! - `sign`: the `API-Sign` header (HMAC-SHA512 over the path and SHA-256 of nonce + body).
//! - `nonce`: the strictly increasing per-key nonce.
//! - [`assets`]: raw asset keys (`XXBT`, `DOT.S`) to `(asset, family)` label pairs.
//! - `envelope`: the answer envelope every endpoint shares, and exact decimals.
//! - `error`: the closed set of failure reasons exported as `kraken_poll_errors_total{reason}`.
//! - [`client`]: the signed private call, nonce and request under one lock per key.
//! - One module per endpoint, with its request, its decoder and its method on the client:
//!   [`balance_ex`], [`trade_balance`], [`earn_allocations`], [`api_key`], [`ledgers`], [`funding`]
//!   (`WithdrawStatus`, `DepositStatus`) (private), [`public`]
//!   (`Assets`, `AssetPairs`, `Ticker`).
//! - [`futures`]: the Kraken Futures client (another host, keys and signature), its `accounts` and
//!   its key check.

pub mod api_key;
pub mod assets;
pub mod balance_ex;
pub mod client;
pub mod earn_allocations;
pub(crate) mod envelope;
pub(crate) mod error;
pub mod funding;
pub mod futures;
pub mod ledgers;
pub(crate) mod nonce;
pub mod public;
pub mod sign;
pub mod trade_balance;

pub use assets::{AssetFamily, AssetLabels};
pub use balance_ex::{AssetBalance, Balances};
pub use client::{Fingerprint, KrakenClient, RebaseMultiplier};
pub use error::{ErrorReason, PollError};

/// The path of `BalanceEx`, requested and signed.
pub const BALANCE_EX_PATH: &str = balance_ex::PATH;
