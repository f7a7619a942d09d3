//! A simulated Kraken on loopback, for `--demo` and for the tests (one fake, not two).
//!
//! It checks requests the way Kraken does: a `User-Agent`, a known `API-Key`, an `API-Sign` recomputed
//! from the exact body bytes, and a nonce strictly greater than the last one seen for that key. It
//! serves a portfolio per key, can drift balances and prices between polls, and can be told to fail the
//! way Kraken and its CDN fail. Every private request is recorded so tests can prove what the exporter
//! sent.
//!
//! - `private`: Kraken's checks of every signed request (signature, nonce, 2FA password, permission
//!   per endpoint), `BalanceEx` and `GetApiKeyInfo`.
//! - One module per other endpoint with its simulated state and answer: `trade_balance`, `earn`,
//!   `key_info` (both keys' permissions), `ledger` (the ledger, withdrawals and deposits, and
//!   Kraken's rate counter), `futures` (the wallets, the key check, and Kraken Futures'
//!   own checks). The router and the per-key record (`SimAccount`) below still name each endpoint.
//! - `public`: `Assets`, `AssetPairs` and `Ticker` for valuation.
//! - `faults`: the failures it can be told to produce.

mod earn;
mod faults;
mod futures;
mod key_info;
mod ledger;
mod private;
mod public;
mod trade_balance;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::{Digest, Sha512};

pub use earn::SimAllocation;
pub use faults::Fault;
pub use futures::{SimFlex, SimFutures};
pub use key_info::{SimKeyInfo, SIM_IBAN};
pub use ledger::{RateCounter, SimEntry, SimLedger, SimMovement};
pub use trade_balance::{MovingLevel, SimMargin};

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
    /// The path requested (`/0/private/BalanceEx`).
    pub path: &'static str,
    /// The body's fields, the 2FA password left out.
    pub fields: BTreeMap<String, String>,
    pub api_key: String,
    pub api_sign: String,
    pub nonce: Option<u64>,
    pub signature_valid: bool,
    /// The Kraken error returned, if any (`None` for success and for CDN-level faults).
    pub error: Option<String>,
    pub received_at: std::time::Instant,
}

struct SimAccount {
    secret: Vec<u8>,
    last_nonce: u64,
    portfolio: Portfolio,
    /// The key's 2FA password, required in every request when set.
    otp: Option<String>,
    /// Paths this key has no permission for.
    denied: HashSet<&'static str>,
    margin: Option<SimMargin>,
    trade_balance_calls: u64,
    earn: Vec<SimAllocation>,
    /// Answers served byte for byte once a request to the path passed Kraken's checks.
    recorded: HashMap<&'static str, Bytes>,
    /// What `GetApiKeyInfo` answers.
    key_info: SimKeyInfo,
    ledger: SimLedger,
    withdrawals: Vec<SimMovement>,
    deposits: Vec<SimMovement>,
    /// Kraken's rate counter, when a test turns it on.
    rate: Option<RateCounter>,
}

#[derive(Default)]
struct SimInner {
    accounts: HashMap<String, SimAccount>,
    /// Kraken Futures keys, by public key.
    futures: HashMap<String, futures::SimFuturesKey>,
    /// The fault of the Kraken Futures endpoint (`KrakenError` carries a futures error code).
    futures_fault: Option<Fault>,
    fault: Option<Fault>,
    public_fault: Option<Fault>,
    /// Calls of each public endpoint (`Assets`, `AssetPairs`, `Ticker`).
    public_calls: std::collections::BTreeMap<&'static str, usize>,
    requests: Vec<SimRequest>,
    drift: bool,
    rng: fastrand::Rng,
}

type Shared = Arc<Mutex<SimInner>>;

impl SimInner {
    /// Records a request (every one is, whatever happens to it next); its index.
    fn record(&mut self, request: SimRequest) -> usize {
        self.requests.push(request);
        self.requests.len() - 1
    }
}

/// A request header as text (empty when absent or not text).
fn header_text(headers: &axum::http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

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
            .route(
                crate::kraken::trade_balance::PATH,
                post(trade_balance::handler),
            )
            .route(crate::kraken::earn_allocations::PATH, post(earn::handler))
            .route(
                crate::kraken::futures::accounts::PATH,
                get(futures::accounts),
            )
            .route(crate::kraken::api_key::PATH, post(private::api_key_info))
            .route(
                crate::kraken::futures::key_check::PATH,
                get(futures::key_check),
            )
            .route(crate::kraken::ledgers::PATH, post(ledger::ledgers))
            .route(
                crate::kraken::funding::Direction::Withdrawal.path(),
                post(ledger::withdraw_status),
            )
            .route(
                crate::kraken::funding::Direction::Deposit.path(),
                post(ledger::deposit_status),
            )
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
        crate::sync::lock(&self.inner)
    }

    /// Registers an API key with its decoded secret and portfolio.
    pub fn add_account(&self, api_key: &str, secret: &[u8], portfolio: Portfolio) {
        self.lock().accounts.insert(
            api_key.to_string(),
            SimAccount {
                secret: secret.to_vec(),
                last_nonce: 0,
                portfolio,
                otp: None,
                denied: HashSet::new(),
                margin: None,
                trade_balance_calls: 0,
                earn: Vec::new(),
                recorded: HashMap::new(),
                key_info: SimKeyInfo::query_only(),
                ledger: SimLedger::default(),
                withdrawals: Vec::new(),
                deposits: Vec::new(),
                rate: None,
            },
        );
    }

    /// Gives a key a 2FA password: every request must then carry it as `otp`.
    pub fn set_otp(&self, api_key: &str, otp: Option<&str>) {
        if let Some(account) = self.lock().accounts.get_mut(api_key) {
            account.otp = otp.map(str::to_string);
        }
    }

    /// Refuses `path` for a key with `EGeneral:Permission denied`, as a key without the permission.
    pub fn deny(&self, api_key: &str, path: &'static str) {
        if let Some(account) = self.lock().accounts.get_mut(api_key) {
            account.denied.insert(path);
        }
    }

    /// Lets a key answer `TradeBalance` with these figures (without: no positions, all zero).
    pub fn set_margin(&self, api_key: &str, margin: Option<SimMargin>) {
        if let Some(account) = self.lock().accounts.get_mut(api_key) {
            account.margin = margin;
        }
    }

    /// Sets a key's Earn allocations.
    pub fn set_earn(&self, api_key: &str, allocations: Vec<SimAllocation>) {
        if let Some(account) = self.lock().accounts.get_mut(api_key) {
            account.earn = allocations;
        }
    }

    /// Replaces a key's portfolio (assets left out vanish from the next answer).
    pub fn set_portfolio(&self, api_key: &str, portfolio: Portfolio) {
        if let Some(account) = self.lock().accounts.get_mut(api_key) {
            account.portfolio = portfolio;
        }
    }

    /// Answers `path` for this key with `body`, byte for byte (a recorded answer of a real account),
    /// once the request passed Kraken's checks; `None` goes back to the simulated answer.
    pub fn set_recorded(&self, api_key: &str, path: &'static str, body: Option<Vec<u8>>) {
        if let Some(account) = self.lock().accounts.get_mut(api_key) {
            match body {
                Some(body) => account.recorded.insert(path, Bytes::from(body)),
                None => account.recorded.remove(path),
            };
        }
    }

    /// Sets a key's ledger.
    pub fn set_ledger(&self, api_key: &str, ledger: SimLedger) {
        if let Some(account) = self.lock().accounts.get_mut(api_key) {
            account.ledger = ledger;
        }
    }

    /// Appends entries to a key's ledger: `(time, type, asset, amount, fee)`; their ids.
    pub fn push_ledger(
        &self,
        api_key: &str,
        entries: &[(Decimal, &str, &str, &str, &str)],
    ) -> Vec<String> {
        let mut state = self.lock();
        let Some(account) = state.accounts.get_mut(api_key) else {
            return Vec::new();
        };
        entries
            .iter()
            .map(|(time, kind, asset, amount, fee)| {
                account.ledger.push(*time, kind, asset, amount, fee)
            })
            .collect()
    }

    /// A key's whole ledger, in the order entries were added.
    pub fn ledger(&self, api_key: &str) -> Vec<SimEntry> {
        self.lock()
            .accounts
            .get(api_key)
            .map(|account| account.ledger.entries().to_vec())
            .unwrap_or_default()
    }

    /// Sets what `WithdrawStatus` and `DepositStatus` list for a key.
    pub fn set_funding(
        &self,
        api_key: &str,
        withdrawals: Vec<SimMovement>,
        deposits: Vec<SimMovement>,
    ) {
        if let Some(account) = self.lock().accounts.get_mut(api_key) {
            account.withdrawals = withdrawals;
            account.deposits = deposits;
        }
    }

    /// Turns on Kraken's rate counter of a key at a verification tier (`None`: no counter).
    pub fn set_rate_limit(&self, api_key: &str, tier: Option<&str>) {
        if let Some(account) = self.lock().accounts.get_mut(api_key) {
            account.rate = tier.and_then(RateCounter::of_tier);
        }
    }

    /// Registers a Kraken Futures key with its decoded secret and wallets.
    pub fn add_futures(&self, api_key: &str, secret: &[u8], wallets: SimFutures) {
        self.lock().futures.insert(
            api_key.to_string(),
            futures::SimFuturesKey {
                secret: secret.to_vec(),
                last_nonce: 0,
                wallets,
                calls: 0,
                recorded: None,
                public_key: api_key.to_string(),
                key_info: Some(SimKeyInfo::futures_read_only()),
            },
        );
    }

    /// Sets what `GetApiKeyInfo` answers for a spot key.
    pub fn set_key_info(&self, api_key: &str, info: SimKeyInfo) {
        if let Some(account) = self.lock().accounts.get_mut(api_key) {
            account.key_info = info;
        }
    }

    /// Sets what the key check answers for a futures key (`None`: HTTP 404, no such endpoint).
    pub fn set_futures_key_info(&self, api_key: &str, info: Option<SimKeyInfo>) {
        if let Some(key) = self.lock().futures.get_mut(api_key) {
            key.key_info = info;
        }
    }

    /// Replaces a futures key's wallets.
    pub fn set_futures(&self, api_key: &str, wallets: SimFutures) {
        if let Some(key) = self.lock().futures.get_mut(api_key) {
            key.wallets = wallets;
        }
    }

    /// Answers a futures key's `accounts` with `body` byte for byte once the request passed the
    /// checks; `None` goes back to the simulated wallets.
    pub fn set_futures_recorded(&self, api_key: &str, body: Option<Vec<u8>>) {
        if let Some(key) = self.lock().futures.get_mut(api_key) {
            key.recorded = body.map(Bytes::from);
        }
    }

    /// Sets or clears the fault of the Kraken Futures endpoint only.
    pub fn set_futures_fault(&self, fault: Option<Fault>) {
        self.lock().futures_fault = fault;
    }

    /// The last nonce the simulator accepted from a futures key.
    pub fn futures_last_nonce(&self, api_key: &str) -> Option<u64> {
        self.lock().futures.get(api_key).map(|key| key.last_nonce)
    }

    /// Sets or clears the fault applied to every following request.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.lock().fault = fault;
    }

    /// How many times the public endpoint `name` (`Assets`, `AssetPairs`, `Ticker`) was called.
    pub fn public_calls(&self, name: &str) -> usize {
        self.lock().public_calls.get(name).copied().unwrap_or(0)
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

    /// How many requests were received, and how many of them Kraken's checks refused (the
    /// benchmarks' count of calls made, without copying the record).
    pub fn request_counts(&self) -> (usize, usize) {
        let state = self.lock();
        let refused = state.requests.iter().filter(|r| r.error.is_some()).count();
        (state.requests.len(), refused)
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

/// A Kraken-shaped `BalanceEx` answer (the whole body) with `count` assets over every family, amounts as 10-decimal
/// strings: the input of the benchmarks and instruction budgets.
pub fn synthetic_balance_ex(count: usize) -> String {
    const SUFFIXES: [&str; 8] = ["", ".S", ".M", ".B", ".F", ".T", ".P", ".HOLD"];
    let assets: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#""AST{}{}":{{"balance":"{}.{:010}","hold_trade":"{}.{:010}"{}}}"#,
                i / SUFFIXES.len(),
                SUFFIXES[i % SUFFIXES.len()],
                (i * 7919) % 1_000_000,
                (i * 104_729) % 10_000_000_000,
                (i * 31) % 1_000,
                (i * 7) % 10_000_000_000,
                if i % 10 == 0 {
                    r#","credit":"500.0000000000","credit_used":"120.5000000000""#
                } else {
                    ""
                }
            )
        })
        .collect();
    format!(r#"{{"error":[],"result":{{{}}}}}"#, assets.join(","))
}
