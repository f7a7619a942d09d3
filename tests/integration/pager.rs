//! The pager is never silent, proven with the real binary, a real Prometheus and the shipped rules
//! against the simulator: an account that holds none of a thresholded asset pages within an
//! evaluation of its poll, `btc` and `BTC` page on XBT balances, and an endpoint refused its
//! permission, a price feed that is down and a failed reload each reach their alert.

use std::time::Duration;

use serde_json::Value;

use kraken_exporter::simulator::{Fault, SimBalance};

use crate::helpers::{eventually_within, portfolio, write_secret_file, TestAccount};
use crate::promtool::{prometheus_tool, spawn_exporter, spawn_prometheus};

/// Every alert Prometheus holds as (alertname, account, asset, state).
async fn alerts(http: &reqwest::Client, prometheus: &str) -> Vec<(String, String, String, String)> {
    let Ok(response) = http.get(format!("{prometheus}/api/v1/alerts")).send().await else {
        return Vec::new();
    };
    let alerts: Value = response.json().await.unwrap_or_default();
    let text = |alert: &Value, key: &str| alert["labels"][key].as_str().unwrap_or("").to_string();
    alerts["data"]["alerts"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|a| {
                    (
                        text(a, "alertname"),
                        text(a, "account"),
                        text(a, "asset"),
                        a["state"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `alertname` on `account` (and `asset`, when not empty) is pending or firing.
async fn until_paged(
    http: &reqwest::Client,
    prometheus: &str,
    alertname: &str,
    account: &str,
    asset: &str,
    within: Duration,
) {
    eventually_within(
        &format!("{alertname} on {account} {asset} pending or firing"),
        within,
        Duration::from_millis(200),
        || async {
            alerts(http, prometheus)
                .await
                .iter()
                .any(|(name, a, s, state)| {
                    name == alertname
                        && a == account
                        && (asset.is_empty() || s == asset)
                        && (state == "pending" || state == "firing")
                })
                .then_some(())
        },
    )
    .await;
}

/// The number of series `expr` returns now.
async fn series(http: &reqwest::Client, prometheus: &str, expr: &str) -> usize {
    let Ok(response) = http
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
    else {
        return 0;
    };
    let answer: Value = response.json().await.unwrap_or_default();
    answer["data"]["result"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn every_way_the_page_could_go_silent_reaches_an_alert_on_a_real_prometheus() {
    let Some(prometheus_bin) = prometheus_tool("prometheus") else {
        return;
    };
    let simulator = kraken_exporter::simulator::Simulator::start()
        .await
        .unwrap();
    // Holds dollars and no bitcoin at all: Kraken's answer has no XBT row.
    let none = TestAccount::new("holds_none", "KEY-pager-holds-none");
    simulator.add_account(
        none.api_key,
        &none.secret,
        portfolio(&[("ZUSD", SimBalance::new("100.0000", "0.0000", 4))]),
    );
    // Holds 0.2 XBT under Kraken's legacy key.
    let some = TestAccount::new("holds_some", "KEY-pager-holds-some");
    simulator.add_account(
        some.api_key,
        &some.secret,
        portfolio(&[("XXBT", SimBalance::new("0.2000000000", "0.0000000000", 10))]),
    );
    // holds_none's key lacks the Earn permission it is configured for.
    simulator.set_recorded(
        none.api_key,
        "/0/private/Earn/Allocations",
        Some(br#"{"error":["EGeneral:Permission denied"]}"#.to_vec()),
    );
    let dir = tempfile::tempdir().unwrap();
    let account = |account: &TestAccount, extra: &str| {
        let secret = write_secret_file(dir.path(), account.name, &account.secret);
        format!(
            "[[accounts]]\nname = \"{}\"\napi_key = \"{}\"\napi_secret_file = \"{}\"\n{extra}\n",
            account.name,
            account.api_key,
            secret.display()
        )
    };
    let config_text = format!(
        "api_url = \"{}\"\npoll_interval = \"1s\"\nprice_interval = \"5s\"\nrate_limit_tier = \"pro\"\nquote_currencies = [\"USD\"]\n\n{}{}",
        simulator.url(),
        account(
            &none,
            "earn = true\n[[accounts.min_spendable]]\nasset = \"btc\"\namount = \"0.5\"\n"
        ),
        account(
            &some,
            "[[accounts.min_spendable]]\nasset = \"BTC\"\namount = \"0.5\"\n"
        ),
    );
    let config = dir.path().join("kraken_exporter.toml");
    std::fs::write(&config, &config_text).unwrap();
    let config_arg = config.display().to_string();
    let (_exporter, exporter_port) =
        spawn_exporter(&["--config.file", &config_arg, "--web.enable-lifecycle"]);
    let exporter_url = format!("http://127.0.0.1:{exporter_port}");
    let (_prometheus, prometheus) = spawn_prometheus(&prometheus_bin, exporter_port, dir.path());
    let http = reqwest::Client::new();

    // The account that holds no bitcoin: its figure, 0 XBT, reaches Prometheus, and the alert is
    // pending within an evaluation or two (1 s each) of it.
    eventually_within(
        "holds_none's spendable XBT scraped",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            (series(
                &http,
                &prometheus,
                r#"kraken_spendable{account="holds_none",asset="XBT"} == 0"#,
            )
            .await
                == 1)
                .then_some(())
        },
    )
    .await;
    until_paged(
        &http,
        &prometheus,
        "KrakenSpendableBelowMinimum",
        "holds_none",
        "XBT",
        Duration::from_secs(3),
    )
    .await;
    // "BTC" pages on the XBT balance (0.2 against 0.5).
    until_paged(
        &http,
        &prometheus,
        "KrakenSpendableBelowMinimum",
        "holds_some",
        "XBT",
        Duration::from_secs(10),
    )
    .await;
    // The Earn endpoint the key may not call.
    until_paged(
        &http,
        &prometheus,
        "KrakenEndpointDown",
        "holds_none",
        "",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        !alerts(&http, &prometheus)
            .await
            .iter()
            .any(|(name, account, _, _)| name == "KrakenEndpointDown" && account == "holds_some"),
        "only the refused endpoint is down"
    );

    // The price feed goes down: values go quiet, and that pages.
    simulator.set_public_fault(Some(Fault::ServerErrorHtml));
    until_paged(
        &http,
        &prometheus,
        "KrakenPricesDown",
        "",
        "",
        Duration::from_secs(15),
    )
    .await;

    // A reload of a broken configuration: the old one keeps running, and that pages.
    std::fs::write(&config, "poll_interval = \"soon\"\n").unwrap();
    let reload = http
        .post(format!("{exporter_url}/-/reload"))
        .send()
        .await
        .unwrap();
    assert!(!reload.status().is_success(), "the reload fails");
    until_paged(
        &http,
        &prometheus,
        "KrakenConfigReloadFailed",
        "",
        "",
        Duration::from_secs(10),
    )
    .await;
}

/// KrakenExporterTaskRestarting uses `increase()`, which cannot see a counter's first value: every
/// task's counter is exported at 0 from the start, so its first restart counts.
#[tokio::test]
async fn every_task_has_its_restart_counter_at_zero_from_the_start() {
    let (simulator, main) =
        crate::helpers::simulator_with_main(kraken_exporter::demo::demo_portfolio()).await;
    let settings = crate::helpers::settings_for(&simulator, &[&main]);
    let app = crate::helpers::TestApp::spawn(&settings).await;
    let m = app
        .scrape_until("the first poll", |m| m.up("main") == 1.0)
        .await;
    for task in ["poller/main", "prices"] {
        assert_eq!(
            m.get(&format!(
                r#"kraken_exporter_task_restarts_total{{task="{task}"}}"#
            )),
            Some(0.0),
            "{task}"
        );
    }
    app.stop().await;
}
