//! Runs the simulated Kraken on its own with a large portfolio, for benchmarks and manual testing.
//!
//! ```sh
//! cargo run --release --example simulated_kraken -- --accounts 3 --assets 1000 --dir /tmp/kraken-bench
//! kraken_exporter --config /tmp/kraken-bench/kraken_exporter.toml
//! ```
//!
//! It writes one secret file per account and a `kraken_exporter.toml` pointing at itself into `--dir`,
//! prints `ready <url>` and serves until interrupted. Every account has a Kraken Futures key too, with
//! the demo's wallets (cash, and a flex wallet with an open position), unless `--no-futures`; with
//! `--ledger`, the demo trading account's growing ledger and `ledger = true`.

use std::path::PathBuf;

use base64::Engine;
use clap::Parser;
use kraken_exporter::demo::{demo_futures, trading_ledger};
use kraken_exporter::simulator::{generate_secret, Portfolio, SimBalance, Simulator};

#[derive(Parser)]
struct Args {
    /// Number of accounts (API keys).
    #[arg(long, default_value_t = 3)]
    accounts: usize,
    /// Assets per account.
    #[arg(long, default_value_t = 1000)]
    assets: usize,
    /// Poll interval written into the config.
    #[arg(long, default_value = "30s")]
    poll_interval: String,
    /// Decimal places of every amount (Kraken pads crypto to 10, fiat to 4).
    #[arg(long, default_value_t = 10)]
    decimals: u32,
    /// Leave the Kraken Futures wallets out.
    #[arg(long)]
    no_futures: bool,
    /// Asset keys of this many characters (padded after the `AST<n>` stem), as a hostile or broken
    /// upstream might send; 0 for the usual short keys.
    #[arg(long, default_value_t = 0)]
    name_length: usize,
    /// New asset keys every second (every answer names assets never seen before).
    #[arg(long)]
    churn: bool,
    /// `rate_limit_tier` written into the config (the simulator keeps no rate counter).
    #[arg(long, default_value = "starter")]
    rate_limit_tier: String,
    /// Give every account the demo trading account's ledger (history, then a trade every 20 s and a
    /// staking reward every minute) and `ledger = true`.
    #[arg(long)]
    ledger: bool,
    /// Where the config and secret files go.
    #[arg(long)]
    dir: PathBuf,
}

/// `count` assets spread over every family, with Kraken-like amounts of `decimals` places; keys of
/// `name_length` characters when not 0, different for every `generation`.
fn portfolio(count: usize, decimals: u32, name_length: usize, generation: u64) -> Portfolio {
    const SUFFIXES: [&str; 8] = ["", ".S", ".M", ".B", ".F", ".T", ".P", ".HOLD"];
    (0..count)
        .map(|i| {
            let mut stem = format!("AST{}G{generation}", i / SUFFIXES.len());
            if generation == 0 {
                stem = format!("AST{}", i / SUFFIXES.len());
            }
            while stem.len() < name_length {
                stem.push('X');
            }
            let key = format!("{stem}{}", SUFFIXES[i % SUFFIXES.len()]);
            let balance = format!(
                "{}.{:010}",
                (i * 7919) % 1_000_000,
                (i * 104_729) % 10_000_000_000
            );
            let hold = format!("{}.{:010}", (i * 31) % 1_000, (i * 7) % 10_000_000_000);
            (key, SimBalance::new(&balance, &hold, decimals))
        })
        .collect()
}

/// Writes `secret` base64-encoded into `dir/name`, as a secret file holds it; its path.
fn write_secret(dir: &std::path::Path, name: &str, secret: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(
        &path,
        base64::engine::general_purpose::STANDARD.encode(secret),
    )?;
    Ok(path)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let simulator = std::sync::Arc::new(Simulator::start().await?);
    let mut config = format!(
        "api_url = \"{}\"\nfutures_api_url = \"{}\"\npoll_interval = \"{}\"\nrate_limit_tier = \"{}\"\n",
        simulator.url(),
        simulator.url(),
        args.poll_interval,
        args.rate_limit_tier
    );
    for account in 0..args.accounts {
        let secret = generate_secret();
        let api_key = format!("BENCH-key-{account}");
        simulator.add_account(
            &api_key,
            &secret,
            portfolio(args.assets, args.decimals, args.name_length, 0),
        );
        let secret_file = write_secret(&args.dir, &format!("account{account}.secret"), &secret)?;
        config.push_str(&format!(
            "\n[[accounts]]\nname = \"account{account}\"\napi_key = \"{api_key}\"\napi_secret_file = \"{}\"\n",
            secret_file.display()
        ));
        if args.ledger {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            simulator.set_ledger(&api_key, trading_ledger(now));
            config.push_str("ledger = true\n");
        }
        if !args.no_futures {
            let futures_secret = generate_secret();
            let futures_key = format!("BENCH-futures-key-{account}");
            simulator.add_futures(&futures_key, &futures_secret, demo_futures());
            let futures_file = write_secret(
                &args.dir,
                &format!("account{account}.futures.secret"),
                &futures_secret,
            )?;
            config.push_str(&format!(
                "futures_api_key = \"{futures_key}\"\nfutures_api_secret_file = \"{}\"\nfutures_min_margin_ratio = \"2.0\"\n",
                futures_file.display()
            ));
        }
    }
    std::fs::write(args.dir.join("kraken_exporter.toml"), config)?;
    if args.churn {
        let simulator = std::sync::Arc::clone(&simulator);
        let (accounts, assets, decimals, name_length) =
            (args.accounts, args.assets, args.decimals, args.name_length);
        tokio::spawn(async move {
            for generation in 1.. {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                for account in 0..accounts {
                    simulator.set_portfolio(
                        &format!("BENCH-key-{account}"),
                        portfolio(assets, decimals, name_length, generation),
                    );
                }
            }
        });
    }
    // The calls received so far, for bench/scale.sh: `received refused` in `<dir>/requests`, every
    // second.
    {
        let simulator = std::sync::Arc::clone(&simulator);
        let path = args.dir.join("requests");
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let (received, refused) = simulator.request_counts();
                let _ = std::fs::write(&path, format!("{received} {refused}\n"));
            }
        });
    }
    println!("ready {}", simulator.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
