//! End to end against a real Prometheus: the demo exporter scraped with the shipped rules; every query of
//! every dashboard panel returns series; the low-balance alert for the demo's EUR is pending or firing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::helpers::{eventually, free_port};
use crate::promtool::prometheus_tool;

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

async fn query(http: &reqwest::Client, prometheus: &str, expr: &str) -> Value {
    let response = http
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

/// Every PromQL expression of the dashboard: panel targets and variable queries.
fn dashboard_queries(dashboard: &Value) -> (Vec<(String, String)>, Vec<String>) {
    let mut targets = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            targets.push((
                panel["title"].as_str().unwrap().to_string(),
                target["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| v["definition"].as_str().unwrap().to_string())
        .collect();
    (targets, variables)
}

/// Grafana's variables replaced by values a user would have: every account, asset and family.
fn with_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$quote", "USD")
        .replace("$account", ".+")
        .replace("$asset", ".+")
        .replace("$family", ".+")
}

#[tokio::test]
async fn dashboard_queries_and_alerts_work_on_a_real_prometheus_scraping_the_demo() {
    let Some(prometheus_bin) = prometheus_tool("prometheus") else {
        return;
    };
    let http = reqwest::Client::new();
    let exporter_port = free_port();
    let _exporter = Running(
        Command::new(env!("CARGO_BIN_EXE_kraken_exporter"))
            .args([
                "--demo",
                "--web.listen-address",
                &format!("127.0.0.1:{exporter_port}"),
            ])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let exporter = format!("http://127.0.0.1:{exporter_port}");
    eventually("the demo exporter is ready", || async {
        let response = http.get(format!("{exporter}/ready")).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: kraken_exporter\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n",
            repo_path("deploy/prometheus/kraken.rules.yml").display()
        ),
    )
    .unwrap();
    let prometheus_port = free_port();
    let _prometheus = Running(
        Command::new(prometheus_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prometheus = format!("http://127.0.0.1:{prometheus_port}");

    eventually("Prometheus scrapes the exporter", || async {
        let up = http
            .get(format!("{prometheus}/api/v1/query"))
            .query(&[("query", "up{job=\"kraken_exporter\"}")])
            .send()
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()?;
        (up["data"]["result"][0]["value"][1] == "1").then_some(())
    })
    .await;

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("dashboards/kraken_exporter.json")).unwrap(),
    )
    .unwrap();
    let (targets, variables) = dashboard_queries(&dashboard);
    assert!(targets.len() >= 10, "{targets:?}");
    for (panel, expr) in &targets {
        let expr = with_variables(expr);
        // Rates need a few scrapes; give each query a few seconds to fill.
        eventually(
            &format!("panel {panel:?} query {expr} returns series"),
            || async {
                let answer = query(&http, &prometheus, &expr).await;
                assert_eq!(
                    answer["status"], "success",
                    "panel {panel:?}: {expr}: {answer}"
                );
                let series = answer["data"]["result"].as_array().map_or(0, Vec::len);
                (series > 0).then_some(())
            },
        )
        .await;
    }
    for definition in &variables {
        // label_values(selector, label) is Grafana's call of /api/v1/label/<label>/values?match[]=selector.
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap();
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let answer: Value = http
            .get(format!("{prometheus}/api/v1/label/{}/values", label.trim()))
            .query(&[("match[]", with_variables(selector.trim()))])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            answer["data"]
                .as_array()
                .is_some_and(|values| !values.is_empty()),
            "variable {definition}: {answer}"
        );
    }

    // The demo's alerts: on treasury, spendable XBT (0.7 against 1) and available EUR (4,250 against
    // 10,000); on trading, the margin level (180 % and falling, against 200 %).
    for (alertname, account, asset) in [
        ("KrakenSpendableBelowMinimum", "treasury", Some("XBT")),
        ("KrakenAvailableBelowMinimum", "treasury", Some("EUR")),
        ("KrakenMarginLevelLow", "trading", None),
    ] {
        eventually(
            &format!("the demo's {alertname} on {account} {asset:?} is pending or firing"),
            || async {
                let alerts: Value = http
                    .get(format!("{prometheus}/api/v1/alerts"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                alerts["data"]["alerts"]
                    .as_array()?
                    .iter()
                    .any(|alert| {
                        alert["labels"]["alertname"] == alertname
                            && alert["labels"]["account"] == account
                            && asset.is_none_or(|asset| alert["labels"]["asset"] == asset)
                            && (alert["state"] == "pending" || alert["state"] == "firing")
                    })
                    .then_some(())
            },
        )
        .await;
    }

    // The demo's futures margin ratio starts below its minimum and stays there for over two
    // minutes: KrakenFuturesMarginLow passes its minute of pending and fires.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(100);
    loop {
        let alerts: Value = http
            .get(format!("{prometheus}/api/v1/alerts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let state = alerts["data"]["alerts"].as_array().and_then(|alerts| {
            alerts
                .iter()
                .find(|a| {
                    a["labels"]["alertname"] == "KrakenFuturesMarginLow"
                        && a["labels"]["account"] == "trading"
                })
                .map(|a| a["state"].clone())
        });
        if state.as_ref().is_some_and(|s| s == "firing") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "KrakenFuturesMarginLow on the demo's trading account is {state:?}, not firing, after 100 s"
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
