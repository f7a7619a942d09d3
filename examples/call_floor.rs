//! The cost of the calls alone: the same signed calls the exporter makes at the same pace (every
//! account's `BalanceEx`, then its Kraken Futures wallets, once per interval, accounts spread over
//! the interval as the exporter spreads them), against the simulator's configuration, with nothing done with the answers.
//! `bench/scale.sh` runs it after the exporter (`FLOOR=1`) to tell what the exporter adds to the
//! HTTP client and the kernel's loopback TCP.
//!
//! - `--mode bare`: reqwest with the signatures computed inline, every answer read and dropped;
//! - `--mode client`: the exporter's own `KrakenClient` and `FuturesClient` (nonce locks, sensitive
//!   headers, the size cap, the `BalanceEx` fingerprint, futures decoding), nothing published.
//!
//! ```sh
//! cargo run --release --example call_floor -- --config /tmp/kraken-bench/kraken_exporter.toml
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use clap::{Parser, ValueEnum};
use kraken_exporter::kraken::client::{http_client, KrakenClient, NonceSequence};
use kraken_exporter::kraken::futures::FuturesClient;
use kraken_exporter::polling::schedule::first_polls;
use secrecy::{SecretSlice, SecretString};

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Bare,
    Client,
}

#[derive(Parser)]
struct Args {
    /// The configuration the simulator wrote (`<dir>/kraken_exporter.toml`).
    #[arg(long)]
    config: PathBuf,
    /// Seconds between one account's rounds.
    #[arg(long, default_value_t = 10)]
    interval: u64,
    #[arg(long, value_enum, default_value_t = Mode::Bare)]
    mode: Mode,
}

/// One account of the simulator's configuration.
#[derive(Default)]
struct Keys {
    api_key: String,
    secret: Vec<u8>,
    futures_key: Option<String>,
    futures_secret: Vec<u8>,
}

fn value(line: &str, name: &str) -> Option<String> {
    let rest = line
        .strip_prefix(name)?
        .trim_start()
        .strip_prefix('=')?
        .trim();
    Some(rest.trim_matches('"').to_string())
}

fn read_secret(path: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("the simulator wrote the secret file");
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("the simulator writes base64 secrets")
}

/// The API address and every account's keys, read line by line (the simulator writes a flat file).
fn read_config(path: &PathBuf) -> (String, String, Vec<Keys>) {
    let text = std::fs::read_to_string(path).expect("the configuration is readable");
    let (mut api_url, mut futures_url, mut accounts) = (String::new(), String::new(), Vec::new());
    for line in text.lines() {
        if line.trim() == "[[accounts]]" {
            accounts.push(Keys::default());
        } else if let Some(url) = value(line, "api_url") {
            api_url = url;
        } else if let Some(url) = value(line, "futures_api_url") {
            futures_url = url;
        } else if let Some(account) = accounts.last_mut() {
            if let Some(key) = value(line, "api_key") {
                account.api_key = key;
            } else if let Some(file) = value(line, "api_secret_file") {
                account.secret = read_secret(&file);
            } else if let Some(key) = value(line, "futures_api_key") {
                account.futures_key = Some(key);
            } else if let Some(file) = value(line, "futures_api_secret_file") {
                account.futures_secret = read_secret(&file);
            }
        }
    }
    (api_url, futures_url, accounts)
}

/// Milliseconds, as the exporter's nonces (each key is called once per interval here).
fn nonce_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One round of `keys` with reqwest alone.
async fn bare_round(http: &reqwest::Client, api_url: &str, futures_url: &str, keys: &Keys) {
    let path = kraken_exporter::kraken::BALANCE_EX_PATH;
    let nonce = nonce_now();
    let body = format!("nonce={nonce}");
    let sign = kraken_exporter::kraken::sign::api_sign(&keys.secret, path, nonce, body.as_bytes());
    if let Ok(response) = http
        .post(format!("{api_url}{path}"))
        .header("API-Key", &keys.api_key)
        .header("API-Sign", sign)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
    {
        let status = response.status();
        match response.bytes().await {
            Ok(body) if status.is_success() && body.starts_with(br#"{"error":[],"#) => {}
            _ => {
                eprintln!("BalanceEx was refused ({status}): the floor is not the exporter's calls")
            }
        }
    }
    if let Some(futures_key) = &keys.futures_key {
        let path = kraken_exporter::kraken::futures::accounts::PATH;
        let nonce = nonce_now().to_string();
        let authent =
            kraken_exporter::kraken::futures::sign::authent(&keys.futures_secret, path, &nonce, "");
        if let Ok(response) = http
            .get(format!("{futures_url}{path}"))
            .header("APIKey", futures_key)
            .header("Authent", authent)
            .header("Nonce", nonce)
            .send()
            .await
        {
            let _ = response.bytes().await;
        }
    }
}

fn main() {
    let args = Args::parse();
    let (api_url, futures_url, accounts) = read_config(&args.config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime starts");
    runtime.block_on(async move {
        let http = http_client(Duration::from_secs(10)).expect("the client builds");
        let interval = Duration::from_secs(args.interval);
        // The exporter's own spread of first polls.
        let firsts = first_polls(tokio::time::Instant::now(), interval, accounts.len());
        let (api_url, futures_url) = (Arc::<str>::from(api_url), Arc::<str>::from(futures_url));
        for (keys, first) in accounts.into_iter().zip(firsts) {
            let (http, api_url, futures_url) = (http.clone(), api_url.clone(), futures_url.clone());
            let mode = args.mode;
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(first, interval);
                let spot = KrakenClient::new(
                    http.clone(),
                    &api_url,
                    SecretString::from(keys.api_key.clone()),
                    SecretSlice::from(keys.secret.clone()),
                );
                let futures = keys.futures_key.clone().map(|key| {
                    FuturesClient::new(
                        http.clone(),
                        &futures_url,
                        SecretString::from(key),
                        SecretSlice::from(keys.futures_secret.clone()),
                        NonceSequence::default(),
                    )
                });
                let (mut balances, mut wallets) = (None, None);
                loop {
                    ticks.tick().await;
                    match mode {
                        Mode::Bare => bare_round(&http, &api_url, &futures_url, &keys).await,
                        Mode::Client => {
                            if let Ok(Some((_, fingerprint))) =
                                spot.balance_ex_unless(None, balances).await
                            {
                                balances = Some(fingerprint);
                            }
                            if let Some(futures) = &futures {
                                if let Ok(Some((_, fingerprint))) =
                                    futures.accounts_unless(1000, wallets).await
                                {
                                    wallets = Some(fingerprint);
                                }
                            }
                        }
                    }
                }
            });
        }
        println!("calling");
        std::future::pending::<()>().await;
    });
}
