//! Soak: one poller through many cycles against the simulator, switching at random between success,
//! portfolio changes and every fault. Afterwards Kraken saw strictly increasing nonces and only valid
//! signatures, the exported values are exactly the last successful answer, and memory did not grow.

use std::time::Duration;

use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::simulator::{Fault, Portfolio, SimBalance, Simulator};

// Its own test binary, so the resident-memory check sees this test alone.
#[path = "integration/helpers.rs"]
#[allow(dead_code)] // the soak uses a few of the shared helpers
mod helpers;

use helpers::{Samples, TestAccount};

/// Reproducible randomness for the fault schedule.
struct Rng(fastrand::Rng);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.u64(0..n)
    }
}

fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn random_portfolio(rng: &mut Rng) -> Portfolio {
    let mut portfolio = demo_portfolio();
    // Drop some assets, add others, change amounts.
    let keys: Vec<String> = portfolio.keys().cloned().collect();
    for key in keys {
        if rng.below(4) == 0 {
            portfolio.remove(&key);
        }
    }
    for i in 0..rng.below(20) {
        let amount = format!("{}.{:010}", rng.below(1_000_000), rng.below(10_000_000_000));
        portfolio.insert(format!("TOKEN{i}.S"), SimBalance::new(&amount, "0", 10));
    }
    portfolio
}

#[tokio::test]
async fn many_cycles_through_random_faults_stay_exact_and_bounded() {
    let simulator = Simulator::start().await.unwrap();
    let main = TestAccount::new("main", "KEY-soak");
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    // The balances only: every request of the key is one cycle's.
    let mut account = main.settings();
    account.options.set("key_info", false);
    let (mut poller, metrics) = helpers::direct_poller(
        &simulator,
        &account,
        Duration::from_millis(200),
        helpers::default_timing(),
    );

    let kraken = |text: &str| Some(Fault::KrakenError(text.to_string()));
    let faults = [
        Some(Fault::ServerErrorHtml),
        Some(Fault::CdnPage),
        Some(Fault::TruncatedJson),
        Some(Fault::NotEnvelope),
        Some(Fault::Hang),
        kraken("EAPI:Rate limit exceeded"),
        kraken("EService: Throttled: 1"),
        kraken("EAPI:Invalid key"),
        kraken("EAPI:Invalid nonce"),
        kraken("EGeneral:Temporary lockout"),
        kraken("EService:Unavailable"),
        kraken("EGeneral:Internal error"),
    ];
    let mut rng = Rng(fastrand::Rng::with_seed(0x5EED_1234_ABCD_0001));
    let mut last_good: Option<Portfolio> = None;
    let mut rss_after_warmup = None;
    const CYCLES: usize = 600;
    for cycle in 0..CYCLES {
        if cycle == CYCLES / 4 {
            rss_after_warmup = resident_kib();
        }
        let roll = rng.below(10);
        let expected = if roll < 4 {
            let portfolio = random_portfolio(&mut rng);
            simulator.set_portfolio(main.api_key, portfolio.clone());
            simulator.set_fault(None);
            Some(portfolio)
        } else {
            // A hang costs the 200 ms timeout: keep them rare.
            let mut fault = faults[rng.below(faults.len() as u64) as usize].clone();
            if fault == Some(Fault::Hang) && rng.below(8) != 0 {
                fault = Some(Fault::CdnPage);
            }
            simulator.set_fault(fault);
            None
        };
        let result = poller.poll_once().await;
        assert_eq!(
            result.is_ok(),
            expected.is_some(),
            "cycle {cycle}: {result:?}"
        );
        if expected.is_some() {
            last_good = expected;
        }
    }

    let requests = simulator.requests();
    assert_eq!(requests.len(), CYCLES);
    assert!(
        requests.iter().all(|r| r.signature_valid),
        "every signature was valid"
    );
    let nonces: Vec<u64> = requests.iter().filter_map(|r| r.nonce).collect();
    assert_eq!(nonces.len(), CYCLES);
    assert!(
        nonces.windows(2).all(|w| w[0] < w[1]),
        "nonces strictly increase"
    );

    // The exported balances are exactly the last successful answer: same assets, same values.
    let last_good = last_good.expect("some cycles succeeded");
    let m = Samples::parse(&metrics.render_text());
    let exported = m.count_for_account("kraken_balance", "main");
    assert_eq!(exported, last_good.len());
    for (key, asset) in &last_good {
        let labels = kraken_exporter::kraken::assets::classify(key);
        let value = asset.balance
            * asset
                .rebase_multiplier
                .unwrap_or(rust_decimal::Decimal::ONE);
        let expected = kraken_exporter::metrics::to_f64(value.round_dp(asset.decimals));
        assert_eq!(
            m.balance(
                "kraken_balance",
                "main",
                &labels.asset,
                labels.family.label()
            ),
            Some(expected),
            "{key}"
        );
    }

    if let (Some(before), Some(after)) = (rss_after_warmup, resident_kib()) {
        // Leaking one response per cycle (tens of kilobytes) would show; allocator noise stays well below.
        assert!(
            after < before + 8 * 1024,
            "resident memory grew from {before} KiB to {after} KiB"
        );
    }
}
