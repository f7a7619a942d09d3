//! What can be spent per asset on an auto-earn account, through the binary: base rows whose holds
//! exceed their balance next to `.F` rows, exact figures, untouched per-row series, thresholds and
//! values.

use kraken_exporter::simulator::SimBalance;

use crate::helpers::{exporter_command, portfolio, simulator_with_main, Samples};

fn auto_earn_portfolio() -> kraken_exporter::simulator::Portfolio {
    portfolio(&[
        // Holds charged to the base row, the money in the .F row (seen on real accounts).
        ("XXBT", SimBalance::new("0.0000000000", "0.5000000000", 10)),
        ("XBT.F", SimBalance::new("1.2000000000", "0.0000000000", 10)),
        ("ZUSD", SimBalance::new("100.0000", "250.0000", 4)),
        ("USD.F", SimBalance::new("1000.0000", "0.0000", 4)),
        // Auto-earn only.
        ("ETH.F", SimBalance::new("2.5000000000", "0.0000000000", 10)),
        // Credit counts; not spendable families do not.
        (
            "USDT",
            SimBalance::new("10.00000000", "0.00000000", 8)
                .with_credit("500.00000000", "120.50000000"),
        ),
        (
            "DOT.S",
            SimBalance::new("10.0000000000", "0.0000000000", 10),
        ),
        ("USDC.B", SimBalance::new("800.00000000", "0.00000000", 8)),
    ])
}

#[tokio::test]
async fn spendable_sums_spot_and_auto_earn_rows_and_leaves_the_rows_as_kraken_sent_them() {
    let (simulator, main) = simulator_with_main(auto_earn_portfolio()).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = crate::helpers::write_secret_file(dir.path(), "secret", &main.secret);
    let config = dir.path().join("kraken_exporter.toml");
    std::fs::write(
        &config,
        format!(
            r#"api_url = "{}"
quote_currencies = ["USD"]

[[accounts]]
name = "main"
api_key = "{}"
api_secret_file = "{}"

[[accounts.min_spendable]]
asset = "XXBT"
amount = "1.0"

[[accounts.min_spendable]]
asset = "USD"
amount = "500"
"#,
            simulator.url(),
            main.api_key,
            secret.display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        exporter_command(&["--config", &config, "--once"], &[])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = Samples::parse(&stdout);
    let spendable = |asset: &str| {
        m.get(&format!(
            r#"kraken_spendable{{account="main",asset="{asset}"}}"#
        ))
    };

    // 1.2 - 0.5; 1000 + 100 - 250; 10 + 500 - 120.5.
    assert_eq!(spendable("XBT"), Some(0.7));
    assert_eq!(spendable("USD"), Some(850.0));
    assert_eq!(spendable("ETH"), Some(2.5));
    assert_eq!(spendable("USDT"), Some(389.5));
    assert_eq!(spendable("DOT"), None, "staked only: no spendable figure");
    assert_eq!(
        spendable("USDC"),
        None,
        "yield-bearing only: no spendable figure"
    );
    assert_eq!(m.count_for_account("kraken_spendable", "main"), 4);

    // The rows stay exactly Kraken's.
    let available =
        |asset: &str, family: &str| m.balance("kraken_balance_available", "main", asset, family);
    assert_eq!(available("XBT", "spot"), Some(-0.5));
    assert_eq!(available("XBT", "auto_earn"), Some(1.2));
    assert_eq!(available("USD", "spot"), Some(-150.0));
    assert_eq!(
        m.balance("kraken_balance_hold", "main", "XBT", "spot"),
        Some(0.5)
    );

    // Thresholds, under the asset label (XXBT written as XBT).
    assert_eq!(
        m.get(r#"kraken_spendable_min{account="main",asset="XBT"}"#),
        Some(1.0)
    );
    assert_eq!(
        m.get(r#"kraken_spendable_min{account="main",asset="USD"}"#),
        Some(500.0)
    );

    // Values at the simulator's last XBT/USD trade, 95000.10.
    let value = |asset: &str| {
        m.get(&format!(
            r#"kraken_spendable_value{{account="main",asset="{asset}",quote="USD"}}"#
        ))
    };
    assert_eq!(value("XBT"), Some(66500.07));
    assert_eq!(value("USD"), Some(850.0));
    assert_eq!(value("DOT"), None);
}

/// A threshold on an asset the account does not hold pages: the figure is exported at 0 instead of
/// missing, and `btc` or `DOGE` are read as Kraken's `XBT` and `XDG`.
#[tokio::test]
async fn an_asset_with_a_minimum_and_no_row_is_exported_at_zero_whatever_its_spelling() {
    let (simulator, main) = simulator_with_main(portfolio(&[(
        "ZUSD",
        SimBalance::new("100.0000", "0.0000", 4),
    )]))
    .await;
    let extra = r#"
[[accounts.min_spendable]]
asset = "btc"
amount = "0.5"

[[accounts.min_spendable]]
asset = "DOGE"
amount = "1000"

[[accounts.min_spendable]]
asset = "usd"
amount = "50"

[[accounts.min_available]]
asset = "ETH"
family = "staked"
amount = "1"
"#;
    let (code, m, logs) = crate::helpers::once(&simulator, &main, extra).await;
    assert_eq!(code, Some(0), "{logs}");
    for (asset, minimum) in [("XBT", 0.5), ("XDG", 1000.0), ("USD", 50.0)] {
        assert_eq!(
            m.get(&format!(
                r#"kraken_spendable_min{{account="main",asset="{asset}"}}"#
            )),
            Some(minimum),
            "{asset}"
        );
    }
    // Held nowhere: 0, so `kraken_spendable < kraken_spendable_min` matches and pages.
    for asset in ["XBT", "XDG"] {
        assert_eq!(
            m.get(&format!(
                r#"kraken_spendable{{account="main",asset="{asset}"}}"#
            )),
            Some(0.0),
            "{asset}"
        );
    }
    // Rows Kraken sent are as they were.
    assert_eq!(
        m.get(r#"kraken_spendable{account="main",asset="USD"}"#),
        Some(100.0)
    );
    assert_eq!(
        m.balance("kraken_balance", "main", "USD", "spot"),
        Some(100.0)
    );
    // The min_available family without a row: its balance series at 0.
    assert_eq!(
        m.balance("kraken_balance_available", "main", "ETH", "staked"),
        Some(0.0)
    );
    assert_eq!(
        m.get(r#"kraken_balance_available_min{account="main",asset="ETH",family="staked"}"#),
        Some(1.0)
    );
    // No figure for an asset nobody set a minimum on.
    assert_eq!(m.count_for_account("kraken_spendable", "main"), 3);
}
