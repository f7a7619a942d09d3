//! Backoff, staleness and serving through faults, with the real application against the simulator.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::simulator::{Fault, Simulator};

use crate::helpers::{settings_for, simulator_with_main, TestAccount, TestApp};

fn backoff(s: &crate::helpers::Samples) -> f64 {
    s.value(r#"kraken_backoff_seconds{account="main"}"#)
}

fn polls(s: &crate::helpers::Samples) -> f64 {
    s.value(r#"kraken_polls_total{account="main"}"#)
}

#[tokio::test]
async fn failures_back_off_exponentially_up_to_the_cap_and_success_resets() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    simulator.set_fault(Some(Fault::KrakenError("EService:Unavailable".into())));
    let mut settings = settings_for(&simulator, &[&main]);
    settings.max_backoff = Duration::from_secs(3);
    let app = TestApp::spawn(&settings).await;

    let first = app.scrape_until("one failure", |s| polls(s) >= 1.0).await;
    // First failure: twice the 1 s interval, +-20%.
    assert!(
        (1.6..=2.4).contains(&backoff(&first)),
        "{}",
        backoff(&first)
    );
    let third = app
        .scrape_until("three failures", |s| polls(s) >= 3.0)
        .await;
    // Doubling reaches the 3 s cap; jitter below the cap still spreads retries.
    assert!(
        (2.4..=3.0).contains(&backoff(&third)),
        "{}",
        backoff(&third)
    );

    let times: Vec<_> = simulator.requests().iter().map(|r| r.received_at).collect();
    let gap = |i: usize| times[i + 1].duration_since(times[i]).as_secs_f64();
    assert!((1.5..=2.6).contains(&gap(0)), "first gap {}", gap(0));
    assert!((2.3..=3.3).contains(&gap(1)), "second gap {}", gap(1));

    simulator.set_fault(None);
    let recovered = app.scrape_until("recovered", |s| s.up("main") == 1.0).await;
    assert_eq!(backoff(&recovered), 0.0);
}

#[tokio::test]
async fn lockout_waits_the_full_max_backoff_and_throttling_waits_until_the_named_time() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    simulator.set_fault(Some(Fault::KrakenError(
        "EGeneral:Temporary lockout".into(),
    )));
    let mut settings = settings_for(&simulator, &[&main]);
    settings.max_backoff = Duration::from_secs(60);
    let app = TestApp::spawn(&settings).await;
    let locked = app
        .scrape_until("a lockout", |s| s.errors("main", "lockout") >= 1.0)
        .await;
    assert_eq!(backoff(&locked), 60.0);
    drop(app);

    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    let retry_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 20;
    simulator.set_fault(Some(Fault::KrakenError(format!(
        "EService: Throttled: {retry_at}"
    ))));
    let mut settings = settings_for(&simulator, &[&main]);
    settings.max_backoff = Duration::from_secs(60);
    let app = TestApp::spawn(&settings).await;
    let throttled = app
        .scrape_until("throttled", |s| s.errors("main", "rate_limited") >= 1.0)
        .await;
    // Until the named second: between 18 and 20 s from now (whole-second timestamp), not 2 s or 60 s.
    assert!(
        (18.0..=20.0).contains(&backoff(&throttled)),
        "{}",
        backoff(&throttled)
    );
}

#[tokio::test]
async fn stale_balances_are_removed_and_return_with_the_next_success() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let mut settings = settings_for(&simulator, &[&main]);
    settings.stale_after = Some(Duration::from_millis(2500));
    settings.max_backoff = Duration::from_secs(1);
    let app = TestApp::spawn(&settings).await;
    app.scrape_until("first poll", |s| s.up("main") == 1.0)
        .await;

    simulator.set_fault(Some(Fault::Hang));
    let failing = app.scrape_until("failing", |s| s.up("main") == 0.0).await;
    assert!(
        failing.count_for_account("kraken_balance", "main") > 0,
        "kept while fresh"
    );
    let stale = app
        .scrape_until("stale series removed", |s| {
            s.count_for_account("kraken_balance", "main") == 0
        })
        .await;
    assert_eq!(
        stale.count_for_account("kraken_balance_available", "main"),
        0
    );
    assert_eq!(stale.up("main"), 0.0);

    simulator.set_fault(None);
    let back = app.scrape_until("recovered", |s| s.up("main") == 1.0).await;
    assert_eq!(
        back.balance("kraken_balance", "main", "USD", "spot"),
        Some(25435.21)
    );
}

#[tokio::test]
async fn metrics_answer_promptly_while_a_request_to_kraken_hangs() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let mut settings = settings_for(&simulator, &[&main]);
    settings.request_timeout = Duration::from_secs(30);
    let app = TestApp::spawn(&settings).await;
    app.scrape_until("first poll", |s| s.up("main") == 1.0)
        .await;
    simulator.set_fault(Some(Fault::Hang));
    // Wait until a poll is stuck in the hanging request.
    crate::helpers::eventually("a request hangs", || async {
        (simulator.requests().len() >= 2).then_some(())
    })
    .await;
    for _ in 0..5 {
        let response = app
            .http
            .get(format!("{}/metrics", app.address))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .expect("/metrics answers while Kraken hangs");
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(
            body.contains(r#"kraken_balance{account="main",asset="USD",family="spot"} 25435.21"#)
        );
    }
}

#[tokio::test]
async fn unreachable_and_unresolvable_kraken_count_as_http_errors_and_keep_serving() {
    let main = TestAccount::new("main", "KEY-main");
    for api_url in ["http://127.0.0.1:9", "http://kraken-api.invalid"] {
        let simulator = Simulator::start().await.unwrap();
        let mut settings = settings_for(&simulator, &[&main]);
        settings.api_url = api_url.to_string();
        let app = TestApp::spawn(&settings).await;
        let m = app
            .scrape_until("an http error", |s| s.errors("main", "http") >= 1.0)
            .await;
        assert_eq!(m.up("main"), 0.0, "{api_url}");
        assert_eq!(app.get("/health").await.status(), 200);
        assert_eq!(app.get("/ready").await.status(), 503);
    }
}
