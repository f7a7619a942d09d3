//! A simulated Kraken private API on loopback, for `--demo` and for the tests (one fake, not two).
//!
//! It checks requests the way Kraken does: a `User-Agent`, a known `API-Key`, an `API-Sign` recomputed
//! from the exact body bytes, and a nonce strictly greater than the last one seen for that key. It
//! serves a portfolio per key, can drift balances between polls, and can be told to fail the way
//! Kraken and its CDN fail (HTML error pages, hangs, truncated JSON, Kraken error strings). Every
//! request is recorded so tests can prove what the exporter sent.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

use crate::kraken::sign::api_sign;
use crate::kraken::BALANCE_EX_PATH;

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

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("simulated amounts are valid decimal literals")
}

/// Raw asset key -> balance.
pub type Portfolio = BTreeMap<String, SimBalance>;

/// A realistic portfolio covering every family, credit, a rebasing token and an unknown suffix.
pub fn demo_portfolio() -> Portfolio {
    [
        ("ZUSD", SimBalance::new("25435.2100", "8249.7600", 4)),
        ("ZEUR", SimBalance::new("4250.5000", "0.0000", 4)),
        ("XXBT", SimBalance::new("1.2435000000", "0.8423000000", 10)),
        ("XETH", SimBalance::new("15.3000000000", "2.0000000000", 10)),
        ("ETH2", SimBalance::new("0.5120000000", "0.0000000000", 10)),
        (
            "ETH2.S",
            SimBalance::new("32.0000000000", "0.0000000000", 10),
        ),
        (
            "DOT.S",
            SimBalance::new("101.1234567890", "0.0000000000", 10),
        ),
        ("ADA.S", SimBalance::new("4200.12345678", "0.00000000", 8)),
        ("XBT.M", SimBalance::new("0.0500000000", "0.0000000000", 10)),
        ("USDC.B", SimBalance::new("800.00000000", "0.00000000", 8)),
        (
            "USDT",
            SimBalance::new("1000.00000000", "0.00000000", 8)
                .with_credit("500.00000000", "120.50000000"),
        ),
        ("USDT.F", SimBalance::new("2500.00000000", "0.00000000", 8)),
        (
            "KSM.P",
            SimBalance::new("12.5000000000", "0.0000000000", 10),
        ),
        (
            "AAPLx.T",
            SimBalance::new("10.0000000000", "0.0000000000", 10).rebasing("1.0125"),
        ),
        ("XTZ", SimBalance::new("300.00000000", "0.00000000", 8)),
        ("XXDG", SimBalance::new("5000.00000000", "1000.00000000", 8)),
        ("KFEE", SimBalance::new("1000.00", "0.00", 2)),
        ("USD.HOLD", SimBalance::new("150.0000", "0.0000", 4)),
    ]
    .into_iter()
    .map(|(key, balance)| (key.to_string(), balance))
    .collect()
}

/// How the simulator misbehaves, until told otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 with an HTML body, as a CDN in front of a down origin answers.
    ServerErrorHtml,
    /// HTTP 200 with a CDN HTML page instead of JSON.
    CdnPage,
    /// Accept the request and never answer.
    Hang,
    /// HTTP 200 with JSON cut off mid-way.
    TruncatedJson,
    /// HTTP 200 with valid JSON that is not Kraken's envelope.
    NotEnvelope,
    /// The Kraken error string in the envelope, after the request passed authentication.
    KrakenError(String),
    /// HTTP 307 to this `Location`, as a hijacked DNS name or a misconfigured proxy might answer.
    Redirect(String),
    /// HTTP 200 with a JSON-looking body that never ends (no `Content-Length`).
    EndlessBody,
    /// HTTP 200 announcing a `Content-Length` of 1 GiB.
    HugeContentLength,
}

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
    rng: u64,
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
            rng: 0x9E37_79B9_7F4A_7C15,
            ..SimInner::default()
        }));
        let app = Router::new()
            .route(BALANCE_EX_PATH, post(balance_ex))
            .route("/0/public/Assets", get(public_assets))
            .route("/0/public/AssetPairs", get(public_asset_pairs))
            .route("/0/public/Ticker", get(public_ticker))
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

fn kraken_error(text: &str) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        format!("{{\"error\":[{}]}}", Value::String(text.to_string())),
    )
        .into_response()
}

async fn balance_ex(State(inner): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let api_key = header("api-key");
    let sent_sign = header("api-sign");
    let is_json = header("content-type").starts_with("application/json");
    let (nonce, rebase_multiplier) = parse_body(&body, is_json);

    // Every request is recorded, whatever happens to it next.
    let (fault, index) = {
        let mut state = inner.lock().unwrap_or_else(|p| p.into_inner());
        let signature_valid = match (state.accounts.get(&api_key), nonce) {
            (Some(account), Some(nonce)) => {
                api_sign(&account.secret, BALANCE_EX_PATH, nonce, &body) == sent_sign
            }
            _ => false,
        };
        state.requests.push(SimRequest {
            api_key: api_key.clone(),
            api_sign: sent_sign.clone(),
            nonce,
            signature_valid,
            rebase_multiplier: rebase_multiplier.clone(),
            error: None,
            received_at: std::time::Instant::now(),
        });
        (state.fault.clone(), state.requests.len() - 1)
    };
    // Faults in front of the API (the CDN) answer before Kraken sees the request: no nonce is used.
    if let Some(response) = cdn_fault(fault.as_ref()).await {
        return response;
    }

    let mut state = inner.lock().unwrap_or_else(|p| p.into_inner());
    let result =
        authenticate(&mut state, &headers, &api_key, &sent_sign, nonce, &body).and_then(|()| {
            match &state.fault {
                Some(Fault::KrakenError(text)) => Err(text.clone()),
                _ => Ok(()),
            }
        });
    if let Err(text) = result {
        state.requests[index].error = Some(text.clone());
        return kraken_error(&text);
    }
    if state.drift {
        drift(&mut state, &api_key);
    }
    let portfolio = &state.accounts[&api_key].portfolio;
    let body = render_portfolio(portfolio, rebase_multiplier.as_deref() == Some("base"));
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

/// The answer of a fault that sits in front of the API (CDN, network), if `fault` is one.
async fn cdn_fault(fault: Option<&Fault>) -> Option<Response> {
    let response = match fault? {
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Fault::ServerErrorHtml => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/html")],
            "<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
        )
            .into_response(),
        Fault::CdnPage => (
            StatusCode::OK,
            [("content-type", "text/html")],
            "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Checking your browser</body></html>",
        )
            .into_response(),
        Fault::TruncatedJson => {
            (StatusCode::OK, r#"{"error":[],"result":{"ZUSD":{"balance":"25"#).into_response()
        }
        Fault::NotEnvelope => (StatusCode::OK, r#"{"message":"ok","data":[1,2,3]}"#).into_response(),
        Fault::Redirect(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", location.as_str())],
            "",
        )
            .into_response(),
        Fault::EndlessBody => (
            StatusCode::OK,
            [("content-type", "application/json")],
            axum::body::Body::new(EndlessBody { sent: 0 }),
        )
            .into_response(),
        Fault::HugeContentLength => (
            StatusCode::OK,
            [
                ("content-type", "application/json"),
                ("content-length", "1073741824"),
            ],
            axum::body::Body::new(EndlessBody { sent: 0 }),
        )
            .into_response(),
        Fault::KrakenError(_) => return None,
    };
    Some(response)
}

/// A body of `{"error":[],"result":{"A0":{...},...` that never closes, 64 KiB per frame.
struct EndlessBody {
    sent: u64,
}

impl http_body::Body for EndlessBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let mut chunk = String::with_capacity(64 * 1024 + 64);
        if self.sent == 0 {
            chunk.push_str(r#"{"error":[],"result":{"#);
        }
        while chunk.len() < 64 * 1024 {
            self.sent += 1;
            chunk.push_str(&format!(
                r#""A{}":{{"balance":"1.0","hold_trade":"0"}},"#,
                self.sent
            ));
        }
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(chunk)))))
    }
}

/// Simulated `Assets`: raw key and altname. `KFEE`'s altname is `FEE`, as on Kraken.
const SIM_ASSETS: &[(&str, &str)] = &[
    ("XXBT", "XBT"),
    ("XETH", "ETH"),
    ("ZUSD", "USD"),
    ("ZEUR", "EUR"),
    ("XXDG", "XDG"),
    ("DOT", "DOT"),
    ("ADA", "ADA"),
    ("USDT", "USDT"),
    ("USDC", "USDC"),
    ("SOL", "SOL"),
    ("KSM", "KSM"),
    ("XTZ", "XTZ"),
    ("ETH2", "ETH2"),
    ("AAPLx", "AAPLx"),
    ("KFEE", "FEE"),
    ("XREPV2", "REPV2"),
];

/// Simulated `AssetPairs` and their last prices: pair key, altname, base, quote, last trade.
/// USDC has no pair (valued by its peg); ETH, KSM and XDG only against XBT and ADA only against EUR
/// (valued through one hop); USD in EUR through the inverse of EUR/USD.
const SIM_PAIRS: &[(&str, &str, &str, &str, &str)] = &[
    ("XXBTZUSD", "XBTUSD", "XXBT", "ZUSD", "95000.10000"),
    ("XXBTZEUR", "XBTEUR", "XXBT", "ZEUR", "88000.20000"),
    ("XETHXXBT", "ETHXBT", "XETH", "XXBT", "0.03579"),
    ("ZEURZUSD", "EURUSD", "ZEUR", "ZUSD", "1.0795"),
    ("DOTUSD", "DOTUSD", "DOT", "ZUSD", "7.1234"),
    ("ADAEUR", "ADAEUR", "ADA", "ZEUR", "0.654300"),
    ("USDTZUSD", "USDTUSD", "USDT", "ZUSD", "0.99980000"),
    ("SOLUSD", "SOLUSD", "SOL", "ZUSD", "240.12"),
    ("KSMXBT", "KSMXBT", "KSM", "XXBT", "0.000321"),
    ("XTZUSD", "XTZUSD", "XTZ", "ZUSD", "1.2345"),
    ("XXDGXXBT", "XDGXBT", "XXDG", "XXBT", "0.00000412"),
    ("AAPLxUSD", "AAPLxUSD", "AAPLx", "ZUSD", "231.45"),
];

fn envelope(result: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        serde_json::json!({"error": [], "result": result}).to_string(),
    )
        .into_response()
}

async fn public_fault(inner: &Shared) -> Option<Response> {
    let fault = inner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .public_fault
        .clone();
    if let Some(Fault::KrakenError(text)) = &fault {
        return Some(kraken_error(text));
    }
    cdn_fault(fault.as_ref()).await
}

async fn public_assets(State(inner): State<Shared>) -> Response {
    if let Some(response) = public_fault(&inner).await {
        return response;
    }
    let assets: Map<String, Value> = SIM_ASSETS
        .iter()
        .map(|(key, altname)| {
            let info = serde_json::json!({"aclass": "currency", "altname": altname, "decimals": 10, "display_decimals": 5, "status": "enabled"});
            (key.to_string(), info)
        })
        .collect();
    envelope(Value::Object(assets))
}

async fn public_asset_pairs(State(inner): State<Shared>) -> Response {
    if let Some(response) = public_fault(&inner).await {
        return response;
    }
    let pairs: Map<String, Value> = SIM_PAIRS
        .iter()
        .map(|(key, altname, base, quote, _)| {
            let info = serde_json::json!({"altname": altname, "wsname": format!("{base}/{quote}"), "aclass_base": "currency", "base": base, "aclass_quote": "currency", "quote": quote, "status": "online"});
            (key.to_string(), info)
        })
        .collect();
    envelope(Value::Object(pairs))
}

async fn public_ticker(State(inner): State<Shared>) -> Response {
    if let Some(response) = public_fault(&inner).await {
        return response;
    }
    let mut state = inner.lock().unwrap_or_else(|p| p.into_inner());
    let drift = state.drift;
    let mut tickers = Map::new();
    for (key, _, _, _, last) in SIM_PAIRS {
        let mut price = dec(last);
        if drift {
            price = (price * drift_factor(&mut state.rng)).round_dp(price.scale());
        }
        let price = price.to_string();
        tickers.insert(
            key.to_string(),
            serde_json::json!({"a": [price, "1", "1.000"], "b": [price, "1", "1.000"], "c": [price, "0.01000000"], "v": ["100.0", "200.0"], "o": price}),
        );
    }
    envelope(Value::Object(tickers))
}

/// Kraken's checks, in its order: User-Agent, key, nonce present, signature, nonce increasing.
fn authenticate(
    state: &mut SimInner,
    headers: &HeaderMap,
    api_key: &str,
    sent_sign: &str,
    nonce: Option<u64>,
    body: &[u8],
) -> Result<(), String> {
    if headers.get("user-agent").is_none() {
        return Err("EGeneral:Invalid arguments:User-Agent".to_string());
    }
    let Some(account) = state.accounts.get_mut(api_key) else {
        return Err("EAPI:Invalid key".to_string());
    };
    let Some(nonce) = nonce else {
        return Err("EAPI:Invalid nonce".to_string());
    };
    if api_sign(&account.secret, BALANCE_EX_PATH, nonce, body) != sent_sign {
        return Err("EAPI:Invalid signature".to_string());
    }
    if nonce <= account.last_nonce {
        return Err("EAPI:Invalid nonce".to_string());
    }
    account.last_nonce = nonce;
    Ok(())
}

/// The nonce and `rebase_multiplier` of a form or JSON body.
fn parse_body(body: &[u8], is_json: bool) -> (Option<u64>, Option<String>) {
    if is_json {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let nonce = match &value["nonce"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        let rebase = value["rebase_multiplier"].as_str().map(str::to_string);
        return (nonce, rebase);
    }
    let text = String::from_utf8_lossy(body);
    let field = |name: &str| {
        text.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    (
        field("nonce").and_then(|n| n.parse().ok()),
        field("rebase_multiplier"),
    )
}

fn render_portfolio(portfolio: &Portfolio, base: bool) -> String {
    let amount = |value: Decimal, decimals: u32| {
        Value::String(format!(
            "{:.*}",
            decimals as usize,
            value.round_dp(decimals)
        ))
    };
    let mut result = Map::new();
    for (key, asset) in portfolio {
        let balance = match asset.rebase_multiplier {
            Some(multiplier) if !base => asset.balance * multiplier,
            _ => asset.balance,
        };
        let mut fields = Map::new();
        fields.insert("balance".into(), amount(balance, asset.decimals));
        fields.insert(
            "hold_trade".into(),
            amount(asset.hold_trade, asset.decimals),
        );
        if let Some(credit) = asset.credit {
            fields.insert("credit".into(), amount(credit, asset.decimals));
        }
        if let Some(credit_used) = asset.credit_used {
            fields.insert("credit_used".into(), amount(credit_used, asset.decimals));
        }
        result.insert(key.clone(), Value::Object(fields));
    }
    serde_json::json!({"error": [], "result": result}).to_string()
}

/// A factor between 0.998 and 1.002 in steps of 0.0001, from an xorshift64 state.
fn drift_factor(rng: &mut u64) -> Decimal {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let step = i64::try_from(*rng % 41).unwrap_or(0) - 20;
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

/// A demo account: name, API key, portfolio and thresholds as (asset, family, amount).
type DemoAccount = (
    &'static str,
    &'static str,
    Portfolio,
    Vec<(&'static str, &'static str, &'static str)>,
);

/// The simulated accounts of `--demo`. EUR on the treasury account (about 4,250 available) sits below
/// its 10,000 minimum, so the low-balance alert fires on demo data.
fn demo_accounts() -> Vec<DemoAccount> {
    let trading: Portfolio = [
        ("ZUSD", SimBalance::new("1830.4400", "1200.0000", 4)),
        ("XXBT", SimBalance::new("0.3100000000", "0.3000000000", 10)),
        (
            "SOL",
            SimBalance::new("250.0000000000", "40.0000000000", 10),
        ),
        (
            "USDT",
            SimBalance::new("0.00000000", "0.00000000", 8)
                .with_credit("2000.00000000", "1500.00000000"),
        ),
    ]
    .into_iter()
    .map(|(key, balance)| (key.to_string(), balance))
    .collect();
    vec![
        (
            "treasury",
            "DEMO-treasury-key",
            demo_portfolio(),
            vec![
                ("USD", "spot", "5000"),
                ("EUR", "spot", "10000"),
                ("USDT", "auto_earn", "1000"),
            ],
        ),
        (
            "trading",
            "DEMO-trading-key",
            trading,
            vec![("USD", "spot", "250"), ("SOL", "spot", "50")],
        ),
    ]
}

/// How often the demo polls: fast enough to watch values move.
pub const DEMO_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the simulator with freshly generated demo keys and returns settings that poll it.
pub async fn start_demo() -> std::io::Result<(Simulator, crate::config::Settings)> {
    let simulator = Simulator::start().await?;
    simulator.set_drift(true);
    let mut accounts = Vec::new();
    for (name, api_key, portfolio, minimums) in demo_accounts() {
        let secret = generate_secret();
        simulator.add_account(api_key, &secret, portfolio);
        accounts.push(crate::config::AccountSettings {
            name: name.to_string(),
            api_key: secrecy::SecretString::from(api_key.to_string()),
            api_secret: secrecy::SecretSlice::from(secret),
            min_available: minimums
                .into_iter()
                .map(|(asset, family, amount)| crate::config::MinAvailable {
                    asset: asset.to_string(),
                    family: crate::kraken::AssetFamily::from_label(family),
                    amount: dec(amount),
                })
                .collect(),
        });
    }
    let settings = crate::config::Settings {
        api_url: simulator.url(),
        poll_interval: DEMO_POLL_INTERVAL,
        request_timeout: crate::config::DEFAULT_REQUEST_TIMEOUT,
        rebase_multiplier: None,
        max_backoff: crate::config::DEFAULT_MAX_BACKOFF,
        stale_after: None,
        quote_currencies: vec!["USD".to_string(), "EUR".to_string()],
        price_interval: crate::config::DEFAULT_PRICE_INTERVAL,
        accounts,
    };
    Ok((simulator, settings))
}
