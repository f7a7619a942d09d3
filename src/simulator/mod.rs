//! A simulated Kraken on loopback, for `--demo` and for the tests (one fake, not two).
//!
//! It checks requests the way Kraken does: a `User-Agent`, a known `API-Key`, an `API-Sign` recomputed
//! from the exact body bytes, and a nonce strictly greater than the last one seen for that key. It
//! serves a portfolio per key, can drift balances and prices between polls, and can be told to fail the
//! way Kraken and its CDN fail. Every private request is recorded so tests can prove what the exporter
//! sent.
//!
//! - `private`: the signed endpoints (`BalanceEx`) and Kraken's authentication checks.
//! - `public`: `Assets`, `AssetPairs` and `Ticker` for valuation.
//! - `faults`: the failures it can be told to produce.

mod faults;
mod private;
mod public;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::{Digest, Sha512};

pub use faults::Fault;

/// One asset of a simulated portfolio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBalance {
    pub balance: Decimal,
    pub hold_trade: Decimal,
    pub credit: Option<Decimal>,
    pub credit_used: Option<Decimal>,
    /// For rebasing tokens: the rebased balance is `balance * multiplier`; `rebase_multiplier=base`
    /// asks for `balance` itself.
    pub rebase_multiplier: Option<Decimal>,
    /// Decimal places in the answer, as Kraken pads them (4 for fiat, 8 or 10 for crypto).
    pub decimals: u32,
}

impl SimBalance {
    /// A balance with a hold; `balance` and `hold_trade` are decimal strings.
    pub fn new(balance: &str, hold_trade: &str, decimals: u32) -> Self {
        Self {
            balance: dec(balance),
            hold_trade: dec(hold_trade),
            credit: None,
            credit_used: None,
            rebase_multiplier: None,
            decimals,
        }
    }

    pub fn with_credit(mut self, credit: &str, credit_used: &str) -> Self {
        self.credit = Some(dec(credit));
        self.credit_used = Some(dec(credit_used));
        self
    }

    pub fn rebasing(mut self, multiplier: &str) -> Self {
        self.rebase_multiplier = Some(dec(multiplier));
        self
    }
}

pub(crate) fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("simulated amounts are valid decimal literals")
}

/// Raw asset key -> balance.
pub type Portfolio = BTreeMap<String, SimBalance>;

/// What the simulator saw of one request.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub api_key: String,
    pub api_sign: String,
    pub nonce: Option<u64>,
    pub signature_valid: bool,
    pub rebase_multiplier: Option<String>,
    /// The Kraken error returned, if any (`None` for success and for CDN-level faults).
    pub error: Option<String>,
    pub received_at: std::time::Instant,
}

struct SimAccount {
    secret: Vec<u8>,
    last_nonce: u64,
    portfolio: Portfolio,
}

#[derive(Default)]
struct SimInner {
    accounts: HashMap<String, SimAccount>,
    fault: Option<Fault>,
    public_fault: Option<Fault>,
    requests: Vec<SimRequest>,
    drift: bool,
    rng: fastrand::Rng,
}

type Shared = Arc<Mutex<SimInner>>;

/// A running simulated Kraken; stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Simulator {
    /// Starts on `127.0.0.1` at a free port.
    pub async fn start() -> std::io::Result<Self> {
        let inner: Shared = Arc::new(Mutex::new(SimInner {
            rng: fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15),
            ..SimInner::default()
        }));
        let app = Router::new()
            .route(crate::kraken::BALANCE_EX_PATH, post(private::balance_ex))
            .route("/0/public/Assets", get(public::assets))
            .route("/0/public/AssetPairs", get(public::asset_pairs))
            .route("/0/public/Ticker", get(public::ticker))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "simulated Kraken stopped");
            }
        });
        Ok(Self { addr, inner, task })
    }

    /// The base URL to use as `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, SimInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an API key with its decoded secret and portfolio.
    pub fn add_account(&self, api_key: &str, secret: &[u8], portfolio: Portfolio) {
        self.lock().accounts.insert(
            api_key.to_string(),
            SimAccount {
                secret: secret.to_vec(),
                last_nonce: 0,
                portfolio,
            },
        );
    }

    /// Replaces a key's portfolio (assets left out vanish from the next answer).
    pub fn set_portfolio(&self, api_key: &str, portfolio: Portfolio) {
        if let Some(account) = self.lock().accounts.get_mut(api_key) {
            account.portfolio = portfolio;
        }
    }

    /// Sets or clears the fault applied to every following request.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.lock().fault = fault;
    }

    /// Sets or clears the fault of the public endpoints (`Assets`, `AssetPairs`, `Ticker`).
    pub fn set_public_fault(&self, fault: Option<Fault>) {
        self.lock().public_fault = fault;
    }

    /// Lets balances wander a little between polls (the demo's live feel).
    pub fn set_drift(&self, drift: bool) {
        self.lock().drift = drift;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<SimRequest> {
        self.lock().requests.clone()
    }
}

/// 64 bytes for a demo key's secret. Not for real keys: the demo only proves signing end to end.
pub fn generate_secret() -> Vec<u8> {
    let mut hasher = Sha512::new();
    hasher.update(format!("{:?}", std::time::SystemTime::now()));
    hasher.update(std::process::id().to_le_bytes());
    let stack_marker = 0u8;
    hasher.update((&stack_marker as *const u8 as usize).to_le_bytes());
    hasher.finalize().to_vec()
}

/// A factor between 0.998 and 1.002 in steps of 0.0001.
fn drift_factor(rng: &mut fastrand::Rng) -> Decimal {
    let step = rng.i64(-20..=20);
    Decimal::ONE + Decimal::new(step, 4)
}

/// Moves every balance of the account by up to +-0.2% (never below the amount on hold).
fn drift(state: &mut SimInner, api_key: &str) {
    let Some(account) = state.accounts.get_mut(api_key) else {
        return;
    };
    for asset in account.portfolio.values_mut() {
        let factor = drift_factor(&mut state.rng);
        let moved = (asset.balance * factor).round_dp(asset.decimals);
        if moved >= asset.hold_trade {
            asset.balance = moved;
        }
    }
}

pub(crate) fn kraken_error(text: &str) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        format!("{{\"error\":[{}]}}", Value::String(text.to_string())),
    )
        .into_response()
}
