//! `--demo`: three simulated accounts on the [`crate::simulator`]: treasury (auto-earn, Earn
//! allocations in flight, fee credits, fiat on hold) and trading (margin and a Kraken Futures
//! wallet), with thresholds that make the
//! shipped alerts fire on demo data, and fresh, an account that was never funded (Kraken answers it
//! `{"error":[]}`: up, with no balances) whose minimum of 0.5 `btc` (read as `XBT`) pages because it
//! holds none, and whose key lacks the Earn permission it was configured for, so the endpoint-down
//! alert can be seen. Trading's spot key can trade and withdraw (Kraken's documented example key), so
//! `KrakenApiKeyCanMoveFunds` fires; treasury's is query-only, bound to a network and expires in 90
//! days. Trading's ledger grows, a withdrawal left it 20 minutes before the start
//! (`KrakenFundsWithdrawn`) and another has been pending for 3 hours (`KrakenWithdrawalStuck`).

use std::time::{Duration, SystemTime};

use rust_decimal::Decimal;

use crate::config::{AccountSettings, FuturesSettings, MinAvailable, MinSpendable, Settings};
use crate::kraken::AssetFamily;
use crate::simulator::{
    dec, generate_secret, MovingLevel, Portfolio, SimAllocation, SimBalance, SimFlex, SimFutures,
    SimKeyInfo, SimLedger, SimMargin, SimMovement, Simulator,
};

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

/// A demo account: name, API key, portfolio, `min_available` as (asset, family, amount) and
/// `min_spendable` as (asset, amount).
type DemoAccount = (
    &'static str,
    &'static str,
    Portfolio,
    Vec<(&'static str, &'static str, &'static str)>,
    Vec<(&'static str, &'static str)>,
);

/// The treasury account: the realistic portfolio with Kraken Rewards auto-earn on for XBT and USD.
/// As on real accounts, the holds of open orders are charged to the base rows while the money sits in
/// the `.F` rows: XXBT holds 0.6 against a balance of 0.1 (its row's available is -0.5), and what can
/// be spent of XBT is 0.1 - 0.6 + 1.2 = 0.7, below its minimum of 1: the spendable alert fires.
fn treasury_portfolio() -> Portfolio {
    let mut portfolio = demo_portfolio();
    for (key, balance) in [
        ("XXBT", SimBalance::new("0.1000000000", "0.6000000000", 10)),
        ("XBT.F", SimBalance::new("1.2000000000", "0.0000000000", 10)),
        ("USD.F", SimBalance::new("12000.0000", "0.0000", 4)),
    ] {
        portfolio.insert(key.to_string(), balance);
    }
    portfolio
}

/// The simulated accounts of `--demo`. On the treasury account, spendable XBT (0.7) sits below its
/// minimum of 1 and available EUR (about 4,250) below its 10,000 minimum, so both low-funds alerts fire
/// on demo data.
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
            treasury_portfolio(),
            vec![
                ("USD", "spot", "5000"),
                ("EUR", "spot", "10000"),
                ("USDT", "auto_earn", "1000"),
            ],
            vec![("XBT", "1"), ("USD", "5000")],
        ),
        (
            "trading",
            "DEMO-trading-key",
            trading,
            vec![("USD", "spot", "250"), ("SOL", "spot", "50")],
            vec![("SOL", "50")],
        ),
        // Holds nothing; a minimum written as operators write it still pages.
        (
            FRESH,
            FRESH_KEY,
            Portfolio::new(),
            vec![],
            vec![("btc", "0.5")],
        ),
    ]
}

/// The demo account that was never funded, and its key.
const FRESH: &str = "fresh";
const FRESH_KEY: &str = "DEMO-fresh-key";

/// Kraken's answer to a key without the permission an endpoint needs.
const PERMISSION_DENIED_ANSWER: &[u8] = br#"{"error":["EGeneral:Permission denied"]}"#;

/// Kraken's `BalanceEx` answer for an account with no funding history: no `result` at all.
const NEVER_FUNDED_ANSWER: &[u8] = br#"{"error":[]}"#;

/// The trading account's margin: 1,000 USD of margin used on a 2,000 USD trade balance, the level
/// starting at 190 % (below the 200 % minimum, so the alert is pending from the first poll), falling 1
/// point per poll to 140 %, then back at 260 % and down again: below the minimum for 59 polls of 5 s
/// (almost 5 minutes) in every 10-minute cycle, so KrakenMarginLevelLow (for: 2m) fires for about
/// three minutes each time, several evaluations of the shipped 30 s settings.
fn trading_margin() -> SimMargin {
    let mut margin = SimMargin::new(
        "ZUSD",
        "2450.0000",
        "2000.0000",
        "1000.0000",
        "0",
        "5000.0000",
    );
    margin.moving = Some(MovingLevel {
        high: dec("260"),
        low: dec("140"),
        step: dec("1"),
        start: dec("190"),
    });
    margin
}

/// The treasury's Earn allocations: ETH staked with a tranche still bonding, some unbonding and some
/// in ETH's exit queue; DOT allocated with a tranche unbonding. Release times are days after `now`.
fn treasury_earn(now: SystemTime) -> Vec<SimAllocation> {
    let days = |n: u64| now + Duration::from_secs(n * 24 * 60 * 60);
    vec![
        SimAllocation::new("ESDQCOL-WTZEU-NU55QF", "ETH", "0.0412")
            .tranche("allocated", "12.0", days(0))
            .tranche("bonding", "0.5", days(2))
            .tranche("unbonding", "1.25", days(4))
            .tranche("exit_queue", "2.0", days(9)),
        SimAllocation::new("ESXUM7H-SJHQ6-KOQNNI", "DOT", "3.75")
            .tranche("allocated", "75.0", days(0))
            .tranche("unbonding", "25.0", days(27)),
    ]
}

/// The trading account's Kraken Futures key.
const TRADING_FUTURES_KEY: &str = "DEMO-trading-futures-key";

/// The trading account's futures wallets: cash in XBT and USD, and a flex wallet of XBT, USD and EUR
/// collateral with an open position (maintenance margin 5,000 USD). Its margin ratio starts at 1.9
/// (below its 2.0 minimum from the first poll), falls 0.025 per poll to 1.225 and jumps back to 3.0:
/// below the minimum for 31 polls of 5 s (over two and a half minutes) in every 6-minute cycle, so
/// KrakenFuturesMarginLow (for: 1m) is seen firing for over a minute and a half each time.
pub fn demo_futures() -> SimFutures {
    let mut flex = SimFlex::holding(&[
        ("XBT", "0.25", "60000", "2"),
        ("USD", "5000", "1", "0"),
        ("EUR", "2000", "1.08", "2"),
    ])
    .with_position("10000", "5000", "0");
    flex.moving = Some(MovingLevel {
        high: dec("300"),
        low: dec("122.5"),
        step: dec("2.5"),
        start: dec("190"),
    });
    SimFutures {
        cash: vec![
            ("xbt".to_string(), dec("0.0150000000")),
            ("usd".to_string(), dec("420.5000")),
        ],
        flex: Some(flex),
    }
}

/// How often the demo polls: fast enough to watch values move.
pub const DEMO_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the simulator with freshly generated demo keys and returns settings that poll it.
/// Trading's ledger until `now` (history: a first start does not count it) that then grows with a
/// trade every 20 seconds and a staking reward every minute.
pub fn trading_ledger(now: u64) -> SimLedger {
    let mut ledger = SimLedger::default();
    let ago = |seconds: u64| Decimal::from(now - seconds);
    let day = 24 * 3600;
    ledger.push(ago(3 * day), "deposit", "ZUSD", "50000.0000", "0.0000");
    ledger.push(ago(2 * day), "trade", "XXBT", "0.7500000000", "0");
    ledger.push(ago(2 * day), "trade", "ZUSD", "-45000.0000", "72.0000");
    ledger.push(
        ago(day) + Decimal::new(1787, 4),
        "staking",
        "DOT.S",
        "0.0456000000",
        "0",
    );
    ledger.push(
        ago(3 * 3600),
        "withdrawal",
        "XXBT",
        "-0.5000000000",
        "0.0001500000",
    );
    ledger.push(ago(3600), "trade", "XETH", "1.0000000000", "0");
    ledger.push(ago(3600), "trade", "ZUSD", "-2400.0000", "0.0000");
    ledger.push(ago(3600), "trade", "KFEE", "0.00", "3.84");
    ledger.push(ago(20 * 60), "withdrawal", "ZUSD", "-2500.0000", "5.0000");
    ledger.growing()
}

/// Trading's withdrawals and deposits: 0.5 XBT pending for 3 hours, 2 ETH seen 30 minutes ago and
/// waiting for confirmations, and finished ones.
pub fn trading_funding(now: u64) -> (Vec<SimMovement>, Vec<SimMovement>) {
    let withdrawals = vec![
        SimMovement::new("XXBT", "0.5000000000", now - 3 * 3600, "Pending"),
        SimMovement::new("ZUSD", "2500.0000", now - 20 * 60, "Success"),
        SimMovement::new("XETH", "1.0000000000", now - 5 * 3600, "Pending").with_prop("canceled"),
    ];
    let deposits = vec![
        SimMovement::new("XETH", "2.0000000000", now - 30 * 60, "Settled"),
        SimMovement::new("ZUSD", "50000.0000", now - 3 * 24 * 3600, "Success"),
    ];
    (withdrawals, deposits)
}

pub async fn start_demo() -> std::io::Result<(Simulator, Settings)> {
    let simulator = Simulator::start().await?;
    simulator.set_drift(true);
    let mut accounts = Vec::new();
    for (name, api_key, portfolio, min_available, min_spendable) in demo_accounts() {
        let secret = generate_secret();
        simulator.add_account(api_key, &secret, portfolio);
        let mut account = AccountSettings::new(name, api_key, secret);
        account.min_available = min_available
            .into_iter()
            .map(|(asset, family, amount)| MinAvailable {
                asset: crate::kraken::assets::asset_label_of(asset),
                family: AssetFamily::from_label(family),
                amount: dec(amount),
            })
            .collect();
        account.min_spendable = min_spendable
            .into_iter()
            .map(|(asset, amount)| MinSpendable {
                // As the configuration reads it: `btc` is Kraken's `XBT`.
                asset: crate::kraken::assets::asset_label_of(asset),
                amount: dec(amount),
            })
            .collect();
        accounts.push(account);
    }
    simulator.set_recorded(
        FRESH_KEY,
        crate::kraken::BALANCE_EX_PATH,
        Some(NEVER_FUNDED_ANSWER.to_vec()),
    );
    // Trading's key was made for a trading bot and can withdraw too: the key alert pages on it.
    simulator.set_key_info(
        "DEMO-trading-key",
        SimKeyInfo::query_only()
            .named("trading-bot")
            .with_permissions(&[
                "query-funds",
                "withdraw-funds",
                "query-open-trades",
                "modify-trades",
            ]),
    );
    // Treasury's is what the README asks for: query only, bound to the exporter's network.
    let mut treasury_key = SimKeyInfo::query_only().named("treasury-monitoring");
    treasury_key.allowlist = vec!["203.0.113.0/24".to_string()];
    treasury_key.valid_until = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 90 * 24 * 60 * 60;
    simulator.set_key_info("DEMO-treasury-key", treasury_key);
    // Trading runs on margin: its level falls step by step through its 200 % minimum and jumps back.
    simulator.set_margin("DEMO-trading-key", Some(trading_margin()));
    // It trades futures too, with its own futures key.
    let futures_secret = generate_secret();
    simulator.add_futures(TRADING_FUTURES_KEY, &futures_secret, demo_futures());
    if let Some(trading) = accounts.iter_mut().find(|a| a.name == "trading") {
        // As the configuration writes them.
        trading.options = std::mem::take(&mut trading.options)
            .with("margin", true)
            .with("margin_asset", "USD")
            .with("min_margin_level", "2.0")
            .with("futures_min_margin_ratio", "2.0");
        trading.futures = Some(FuturesSettings {
            api_key: TRADING_FUTURES_KEY.to_string().into(),
            api_secret: futures_secret.into(),
        });
    }
    // Fresh asks for Earn with a key that lacks the permission: Kraken refuses every call.
    simulator.set_recorded(
        FRESH_KEY,
        crate::kraken::earn_allocations::PATH,
        Some(PERMISSION_DENIED_ANSWER.to_vec()),
    );
    if let Some(fresh) = accounts.iter_mut().find(|a| a.name == FRESH) {
        fresh.options.set("earn", true);
    }
    // Treasury has Earn allocations bonding and on their way out.
    simulator.set_earn("DEMO-treasury-key", treasury_earn(SystemTime::now()));
    if let Some(treasury) = accounts.iter_mut().find(|a| a.name == "treasury") {
        treasury.options.set("earn", true);
    }
    // Trading's money moves: its ledger grows, a withdrawal left 20 minutes ago (KrakenFundsWithdrawn)
    // and one has been pending for 3 hours (KrakenWithdrawalStuck).
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    simulator.set_ledger("DEMO-trading-key", trading_ledger(now));
    let (withdrawals, deposits) = trading_funding(now);
    simulator.set_funding("DEMO-trading-key", withdrawals, deposits);
    if let Some(trading) = accounts.iter_mut().find(|a| a.name == "trading") {
        trading.options.set("ledger", true);
        trading.options.set("funding", true);
    }
    let mut settings = Settings::with_defaults(simulator.url(), accounts);
    settings.poll_interval = DEMO_POLL_INTERVAL;
    settings.futures_api_url = simulator.url();
    settings.quote_currencies = vec!["USD".to_string(), "EUR".to_string()];
    // The simulator keeps no rate counter, and the demo polls every 5 s to show values move: a
    // Starter key would be warned about, which is not what a first look should teach.
    settings.rate_limit_tier = "pro".to_string();
    Ok((simulator, settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    /// The longest run of polls, over two cycles, whose figure is below `minimum`.
    fn longest_run_below(figure: impl Fn(u64) -> Decimal, minimum: Decimal) -> u64 {
        let (mut longest, mut run) = (0, 0);
        for call in 0..400 {
            run = if figure(call) < minimum { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        longest
    }

    /// Polls (of 5 s) an alert with `for_seconds` needs below its minimum to be seen firing for two
    /// evaluations of the shipped 30 s interval, a scrape of 30 s late included.
    fn polls_needed(for_seconds: u64) -> u64 {
        (for_seconds + 2 * 30 + 30).div_ceil(DEMO_POLL_INTERVAL.as_secs())
    }

    #[test]
    fn the_demos_margin_alerts_stay_firing_long_enough_to_be_seen() {
        let margin = trading_margin();
        let below = longest_run_below(|call| margin.level_at(call).unwrap(), dec("200"));
        assert!(
            below >= polls_needed(120),
            "margin level below 200 % for {below} polls"
        );
        // Below from the first poll, so the alert is pending at once.
        assert!(margin.level_at(0).unwrap() < dec("200"));
        let flex = demo_futures().flex.unwrap();
        let below = longest_run_below(|call| flex.ratio_at(call).unwrap(), dec("2"));
        assert!(
            below >= polls_needed(60),
            "futures ratio below 2 for {below} polls"
        );
        assert!(flex.ratio_at(0).unwrap() < dec("2"));
    }
}
