//! The key itself: GetApiKeyInfo and the Kraken Futures key check, through the binary and the real
//! application against the simulator (which answers with the key, an IBAN and an account uid in
//! Kraken's shapes, so the tests can prove none of them leaves the exporter).

use kraken_exporter::demo::{demo_futures, demo_portfolio};
use kraken_exporter::kraken::api_key::PATH as KEY_INFO_PATH;
use kraken_exporter::kraken::futures::key_check::PATH as KEY_CHECK_PATH;
use kraken_exporter::simulator::{generate_secret, SimKeyInfo, Simulator, SIM_IBAN};

use crate::helpers::{
    default_timing, direct_poller, once, once_at, settings_for, Samples, TestAccount, TestApp,
};

/// The account uid the simulated futures key check answers with.
const SIM_UID: &str = "f7d5571c-6d10-4cf1-944a-048d25682ed0";

/// Kraken's documented example key (docs.kraken.com, "Get API Key Info", March 2026): name,
/// permissions, nonce window, times, no allowlist.
fn documented_key() -> SimKeyInfo {
    let mut key = SimKeyInfo::query_only()
        .named("my-api-key")
        .with_permissions(&[
            "query-funds",
            "withdraw-funds",
            "query-open-trades",
            "modify-trades",
        ]);
    key.created = 1_772_542_900;
    key.modified = 1_772_543_095;
    key
}

fn series(m: &Samples, name: &str, labels: &str) -> Option<f64> {
    m.get(&format!(r#"{name}{{account="main",api="spot"{labels}}}"#))
}

async fn simulator_with(main: &TestAccount) -> Simulator {
    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    simulator
}

#[tokio::test]
async fn krakens_documented_example_is_exported_exactly_and_the_permissions_to_remove_are_named() {
    let main = TestAccount::new("main", "KEY-info-documented");
    let simulator = simulator_with(&main).await;
    simulator.set_key_info(main.api_key, documented_key());
    let (code, m, logs) = once_at(&simulator, &main, "", "trace").await;
    assert_eq!(code, Some(0), "{logs}");
    for permission in [
        "query-funds",
        "withdraw-funds",
        "query-open-trades",
        "modify-trades",
    ] {
        assert_eq!(
            series(
                &m,
                "kraken_api_key_permission",
                &format!(",permission=\"{permission}\"")
            ),
            Some(1.0),
            "{permission}"
        );
    }
    assert_eq!(m.count_for_account("kraken_api_key_permission", "main"), 4);
    assert_eq!(series(&m, "kraken_api_key_can_move_funds", ""), Some(1.0));
    assert_eq!(series(&m, "kraken_api_key_ip_restricted", ""), Some(0.0));
    assert_eq!(series(&m, "kraken_api_key_nonce_window", ""), Some(0.0));
    assert_eq!(
        series(&m, "kraken_api_key_created_timestamp_seconds", ""),
        Some(1_772_542_900.0)
    );
    assert_eq!(
        series(&m, "kraken_api_key_modified_timestamp_seconds", ""),
        Some(1_772_543_095.0)
    );
    // validUntil, queryFrom and queryTo are "0": never expires, no query window.
    for absent in [
        "kraken_api_key_expiry_timestamp_seconds",
        "kraken_api_key_query_window_start_timestamp_seconds",
        "kraken_api_key_query_window_end_timestamp_seconds",
    ] {
        assert_eq!(series(&m, absent, ""), None, "{absent}");
    }
    // The log names each permission to remove, and --once says it per account.
    for permission in ["withdraw-funds", "modify-trades"] {
        assert!(
            logs.contains(&format!("permission={permission}")),
            "{permission}: {logs}"
        );
    }
    assert!(
        logs.contains("spot key \"my-api-key\": permissions modify-trades, query-funds, query-open-trades, withdraw-funds; CAN MOVE FUNDS: remove modify-trades, withdraw-funds; never expires; no IP allowlist"),
        "{logs}"
    );
    // The answer carried the key and an IBAN: neither reaches the log at trace level or the metrics.
    let answers = simulator
        .requests()
        .iter()
        .filter(|r| r.path == KEY_INFO_PATH && r.signature_valid && r.error.is_none())
        .count();
    assert_eq!(answers, 1);
    for text in [&logs, &m.text] {
        assert!(!text.contains(main.api_key), "the key leaked");
        assert!(!text.contains(SIM_IBAN), "the IBAN leaked");
    }
}

#[tokio::test]
async fn a_permission_the_exporter_does_not_know_counts_as_moving_funds_and_is_named() {
    let main = TestAccount::new("main", "KEY-info-unknown");
    let simulator = simulator_with(&main).await;
    simulator.set_key_info(
        main.api_key,
        SimKeyInfo::query_only().with_permissions(&["query-funds", "stake-everything-new"]),
    );
    let (code, m, logs) = once(&simulator, &main, "").await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(series(&m, "kraken_api_key_can_move_funds", ""), Some(1.0));
    assert!(
        logs.contains("permission the exporter does not know")
            && logs.contains("permission=stake-everything-new"),
        "{logs}"
    );
    // A query-only key is not reported as able to move funds.
    simulator.set_key_info(main.api_key, SimKeyInfo::query_only());
    let (_, m, logs) = once(&simulator, &main, "").await;
    assert_eq!(series(&m, "kraken_api_key_can_move_funds", ""), Some(0.0));
    assert!(!logs.contains("CAN MOVE FUNDS"), "{logs}");
}

#[tokio::test]
async fn expiry_allowlist_and_an_ended_query_window_are_exported_and_said() {
    let main = TestAccount::new("main", "KEY-info-window");
    let simulator = simulator_with(&main).await;
    let mut key = SimKeyInfo::query_only();
    key.valid_until = 1_900_000_000;
    key.query_from = 1_600_000_000;
    key.query_to = 1_700_000_000;
    key.nonce_window = 5;
    key.allowlist = vec!["203.0.113.7".to_string(), "198.51.100.0/24".to_string()];
    simulator.set_key_info(main.api_key, key);
    let (code, m, logs) = once(&simulator, &main, "").await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        series(&m, "kraken_api_key_expiry_timestamp_seconds", ""),
        Some(1_900_000_000.0)
    );
    assert_eq!(
        series(
            &m,
            "kraken_api_key_query_window_start_timestamp_seconds",
            ""
        ),
        Some(1_600_000_000.0)
    );
    assert_eq!(
        series(&m, "kraken_api_key_query_window_end_timestamp_seconds", ""),
        Some(1_700_000_000.0)
    );
    assert_eq!(series(&m, "kraken_api_key_nonce_window", ""), Some(5.0));
    assert_eq!(series(&m, "kraken_api_key_ip_restricted", ""), Some(1.0));
    assert_eq!(series(&m, "kraken_api_key_can_move_funds", ""), Some(0.0));
    assert!(
        logs.contains("query window ended (queryTo is in the past)")
            && logs.contains("query window ENDED 2023-11-14T22:13:20Z (balances stop moving)")
            && logs.contains("allowlist 198.51.100.0/24, 203.0.113.7"),
        "{logs}"
    );
}

#[tokio::test]
async fn not_offered_leaves_kraken_up_and_the_other_endpoints_alone_and_is_not_an_error() {
    let main = TestAccount::new("main", "KEY-info-not-offered");
    let simulator = simulator_with(&main).await;
    simulator.set_recorded(
        main.api_key,
        KEY_INFO_PATH,
        Some(br#"{"error":["EGeneral:Unknown method"]}"#.to_vec()),
    );
    let (code, m, logs) = once(&simulator, &main, "margin = true").await;
    assert_eq!(code, Some(0), "not an outage: {logs}");
    assert_eq!(m.up("main"), 1.0);
    let endpoint = |name: &str, endpoint: &str| {
        m.get(&format!(
            r#"{name}{{account="main",endpoint="{endpoint}"}}"#
        ))
    };
    assert_eq!(endpoint("kraken_endpoint_up", "GetApiKeyInfo"), None);
    assert_eq!(
        endpoint("kraken_endpoint_offered", "GetApiKeyInfo"),
        Some(0.0)
    );
    assert_eq!(endpoint("kraken_endpoint_up", "TradeBalance"), Some(1.0));
    assert_eq!(endpoint("kraken_endpoint_up", "BalanceEx"), Some(1.0));
    // Not counted as an error: the series an error would create is not there.
    assert_eq!(
        m.get(r#"kraken_endpoint_errors_total{account="main",endpoint="GetApiKeyInfo",reason="not_offered"}"#),
        None
    );
    assert!(!m.text.contains("kraken_api_key_"), "{}", m.text);
    assert_eq!(
        logs.matches("does not offer this endpoint").count(),
        1,
        "{logs}"
    );
    assert!(!logs.contains("call failed"), "{logs}");

    // Polled again and again (the running exporter asks every key_info_interval): still nothing is
    // down, and the balances keep their health.
    let (mut poller, metrics) = direct_poller(
        &simulator,
        &main.settings(),
        std::time::Duration::from_secs(2),
        default_timing(),
    );
    for _ in 0..3 {
        poller.poll_once().await.expect("balances succeed");
    }
    let m = Samples::parse(&metrics.render_text());
    assert_eq!(m.up("main"), 1.0);
    assert_eq!(
        m.get(r#"kraken_endpoint_up{account="main",endpoint="GetApiKeyInfo"}"#),
        None
    );
    assert_eq!(m.errors("main", "not_offered"), 0.0);
    let asked = simulator
        .requests()
        .iter()
        .filter(|r| r.path == KEY_INFO_PATH)
        .count();
    assert_eq!(asked, 1 + 3, "no backoff: asked on every round");

    // Once Kraken offers it, it is up and exported.
    simulator.set_recorded(main.api_key, KEY_INFO_PATH, None);
    poller.poll_once().await.expect("balances succeed");
    let m = Samples::parse(&metrics.render_text());
    assert_eq!(
        m.get(r#"kraken_endpoint_up{account="main",endpoint="GetApiKeyInfo"}"#),
        Some(1.0)
    );
    assert_eq!(
        m.get(r#"kraken_endpoint_offered{account="main",endpoint="GetApiKeyInfo"}"#),
        Some(1.0)
    );
    assert_eq!(series(&m, "kraken_api_key_can_move_funds", ""), Some(0.0));
}

#[tokio::test]
async fn the_futures_key_is_checked_with_its_own_key_and_a_missing_check_is_not_offered() {
    const FUTURES_KEY: &str = "FUTURES-KEY-info";
    let main = TestAccount::new("main", "KEY-info-futures");
    let simulator = simulator_with(&main).await;
    let secret = generate_secret();
    simulator.add_futures(FUTURES_KEY, &secret, demo_futures());
    let mut futures_key =
        SimKeyInfo::futures_read_only().with_permissions(&["general:full", "withdrawal:read_only"]);
    futures_key.allowlist = vec!["10.0.0.0/8".to_string()];
    simulator.set_futures_key_info(FUTURES_KEY, Some(futures_key));
    let dir = tempfile::tempdir().unwrap();
    let file = crate::helpers::write_secret_file(dir.path(), "futures-secret", &secret);
    let extra = format!(
        "futures_api_key = \"{FUTURES_KEY}\"\nfutures_api_secret_file = \"{}\"\n",
        file.display()
    );
    let (code, m, logs) = once_at(&simulator, &main, &extra, "trace").await;
    assert_eq!(code, Some(0), "{logs}");
    let futures = |name: &str, labels: &str| {
        m.get(&format!(
            r#"{name}{{account="main",api="futures"{labels}}}"#
        ))
    };
    assert_eq!(
        futures("kraken_api_key_permission", ",permission=\"general:full\""),
        Some(1.0)
    );
    assert_eq!(futures("kraken_api_key_can_move_funds", ""), Some(1.0));
    assert_eq!(futures("kraken_api_key_ip_restricted", ""), Some(1.0));
    // The spot key's rows are its own.
    assert_eq!(series(&m, "kraken_api_key_can_move_funds", ""), Some(0.0));
    let checks: Vec<_> = simulator
        .requests()
        .into_iter()
        .filter(|r| r.path == KEY_CHECK_PATH)
        .collect();
    assert_eq!(checks.len(), 1);
    assert!(checks[0].signature_valid && checks[0].api_key == FUTURES_KEY);
    for text in [&logs, &m.text] {
        assert!(!text.contains(FUTURES_KEY), "the futures key leaked");
        assert!(!text.contains(SIM_UID), "the account uid leaked");
        assert!(!text.contains(SIM_IBAN), "the IBAN leaked");
    }

    // A host without the check (HTTP 404): not offered, the wallets unaffected.
    simulator.set_futures_key_info(FUTURES_KEY, None);
    let (code, m, logs) = once_at(&simulator, &main, &extra, "debug").await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        m.get(r#"kraken_endpoint_offered{account="main",endpoint="futures/api-keys/check"}"#),
        Some(0.0)
    );
    assert_eq!(
        m.get(r#"kraken_endpoint_up{account="main",endpoint="futures/accounts"}"#),
        Some(1.0)
    );
    assert!(
        !m.text.contains(r#"api="futures""#),
        "no futures key rows without an answer: {}",
        m.text
    );
    drop(dir);
}

#[tokio::test]
async fn the_status_page_shows_each_key_and_what_to_remove_and_key_info_false_turns_it_off() {
    let main = TestAccount::new("main", "KEY-info-status");
    let quiet = TestAccount::new("quiet", "KEY-info-off");
    let simulator = simulator_with(&main).await;
    simulator.add_account(quiet.api_key, &quiet.secret, demo_portfolio());
    simulator.set_key_info(main.api_key, documented_key());
    let mut settings = settings_for(&simulator, &[&main, &quiet]);
    settings.accounts[1].options.set("key_info", false);
    let app = TestApp::spawn(&settings).await;
    app.scrape_until("the key's answer", |m| {
        series(m, "kraken_api_key_can_move_funds", "") == Some(1.0) && m.up("quiet") == 1.0
    })
    .await;
    let page = app.get("/").await.text().await.unwrap();
    assert!(
        page.contains("<tr class=\"below\"><td>main</td><td>spot key &quot;my-api-key&quot;: permissions modify-trades, query-funds, query-open-trades, withdraw-funds; CAN MOVE FUNDS: remove modify-trades, withdraw-funds;"),
        "{page}"
    );
    assert!(
        !page.contains(main.api_key) && !page.contains(SIM_IBAN),
        "{page}"
    );
    let m = app.scrape().await;
    assert_eq!(m.count_for_account("kraken_api_key_permission", "quiet"), 0);
    assert!(simulator
        .requests()
        .iter()
        .filter(|r| r.path == KEY_INFO_PATH)
        .all(|r| r.api_key == main.api_key));
    app.stop().await;
}
