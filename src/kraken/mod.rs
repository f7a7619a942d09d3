//! The Kraken private REST client, split by concern.
//!
//! - [`sign`]: the `API-Sign` header (HMAC-SHA512 over the path and SHA-256 of nonce + body).
//! - [`nonce`]: the strictly increasing per-key nonce.
//! - [`assets`]: raw asset keys (`XXBT`, `DOT.S`) to `(asset, family)` label pairs.
//! - [`response`]: the `BalanceEx` envelope, decoded exactly with `rust_decimal`.
//! - [`error`]: the closed set of failure reasons exported as `kraken_poll_errors_total{reason}`.
//! - [`client`]: one signed `POST /0/private/BalanceEx` per call, nonce and request under one lock.

pub mod assets;
pub mod client;
pub mod error;
pub mod nonce;
pub mod public;
pub mod response;
pub mod sign;

pub use assets::{AssetFamily, AssetLabels};
pub use client::{KrakenClient, RebaseMultiplier};
pub use error::{ErrorReason, PollError};
pub use response::{AssetBalance, Balances};

/// The path that is both requested (after `api_url`) and signed.
pub const BALANCE_EX_PATH: &str = "/0/private/BalanceEx";
