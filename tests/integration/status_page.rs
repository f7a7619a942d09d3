//! The landing page's status table in a real browser (Debian's headless Chromium): it renders, and a
//! failing account shows its reason and hint. Without Chromium the test skips with a message, unless
//! `REQUIRE_CHROMIUM=1` (as in CI), where a missing browser is a failure.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::kraken::ErrorReason;
use kraken_exporter::simulator::Simulator;

use crate::helpers::{settings_for, TestAccount, TestApp};

fn chromium() -> Option<PathBuf> {
    crate::helpers::required_tool(
        &["chromium", "chromium-browser"],
        "REQUIRE_CHROMIUM",
        "apt-get install chromium",
    )
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom`, `--screenshot=...`); its stdout.
async fn headless(browser: PathBuf, url: String, mode: String) -> String {
    let profile = tempfile::tempdir().unwrap();
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || {
            Command::new(browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--window-size=1400,900",
                    &profile_arg,
                    &mode,
                    &url,
                ])
                .output()
                .unwrap()
        }),
    )
    .await
    .expect("chromium finished within 90 s")
    .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_status_page_shows_a_failing_account_with_its_reason_and_hint_in_a_browser() {
    let Some(browser) = chromium() else {
        return;
    };
    let simulator = Simulator::start().await.unwrap();
    let main = TestAccount::new("main", "KEY-status-main");
    let broken = TestAccount::new("broken", "KEY-status-broken");
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    // Kraken knows the broken key with another secret: every call fails its signature check.
    simulator.add_account(
        broken.api_key,
        &TestAccount::new("other", "x").secret,
        demo_portfolio(),
    );
    let mut settings = settings_for(&simulator, &[&main, &broken]);
    // More bitcoin than main holds: its threshold is below, and shown red.
    settings.accounts[0].min_spendable = vec![kraken_exporter::config::MinSpendable {
        asset: "XBT".to_string(),
        amount: rust_decimal::Decimal::new(1000, 0),
    }];
    let app = TestApp::spawn(&settings).await;
    // kraken_up of broken is 0 from the start: its first poll must also have ended.
    app.scrape_until("broken polled and down, main up", |m| {
        m.get(r#"kraken_up{account="broken"}"#) == Some(0.0)
            && m.get(r#"kraken_polls_total{account="broken"}"#) >= Some(1.0)
            && m.get(r#"kraken_up{account="main"}"#) == Some(1.0)
    })
    .await;
    let dom = headless(
        browser.clone(),
        format!("{}/", app.address),
        "--dump-dom".to_string(),
    )
    .await;
    assert!(dom.contains("<h1>Kraken Exporter</h1>"), "{dom}");
    // The page reloads itself, and main's threshold breach is the red row of the thresholds table.
    assert!(
        dom.contains(r#"<meta http-equiv="refresh" content="10">"#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<tr class="below"><td>main</td><td>spendable XBT</td><td class="figure">"#)
            && dom.contains("<td>1000</td><td>1 of 1</td></tr>"),
        "{dom}"
    );
    assert!(
        dom.contains("tr.below td { background: #f8d0d0; }"),
        "{dom}"
    );
    assert!(
        dom.contains(
            r#"<tr class="down"><td>broken</td><td>BalanceEx</td><td class="state">DOWN</td>"#
        ),
        "{dom}"
    );
    assert!(
        dom.contains("<code>invalid_signature</code>: Kraken answered EAPI:Invalid signature"),
        "{dom}"
    );
    let hint = ErrorReason::InvalidSignature.hint();
    assert!(
        dom.contains(&format!(r#"<td class="hint">{hint}</td>"#)),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<tr class="up"><td>main</td><td>BalanceEx</td><td class="state">UP</td>"#),
        "{dom}"
    );
    assert!(
        !dom.contains(broken.api_key) && !dom.contains(main.api_key),
        "no key on the page"
    );
    // A screenshot for the README when asked (STATUS_SCREENSHOT=docs/status-page.png).
    if let Ok(path) = std::env::var("STATUS_SCREENSHOT") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        headless(
            browser,
            format!("{}/", app.address),
            format!("--screenshot={}", path.display()),
        )
        .await;
        assert!(path.is_file());
    }
    app.stop().await;
}
