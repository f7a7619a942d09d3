//! Failed polls keep the last values, set up=0, count the reason, and recover by themselves.

use std::sync::Arc;
use std::time::Duration;

use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::kraken::client::http_client;
use kraken_exporter::kraken::{ErrorReason, KrakenClient};
use kraken_exporter::metrics::Metrics;
use kraken_exporter::polling::poller::AccountPoller;
use kraken_exporter::simulator::{Fault, Simulator};
use secrecy::{SecretSlice, SecretString};

use crate::helpers::{
    default_timing, direct_poller, settings_for, simulator_with_main, Samples, TestAccount, TestApp,
};

#[tokio::test]
async fn a_failed_poll_keeps_the_last_values_and_recovery_is_automatic() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let app = TestApp::spawn(&settings_for(&simulator, &[&main])).await;
    let before = app
        .scrape_until("first poll", |s| s.up("main") == 1.0)
        .await;
    let usd_before = before.balance("kraken_balance", "main", "USD", "spot");
    assert_eq!(usd_before, Some(25435.21));

    simulator.set_fault(Some(Fault::KrakenError("EService:Unavailable".into())));
    let during = app
        .scrape_until("a failed poll", |s| s.up("main") == 0.0)
        .await;
    assert!(during.errors("main", "unavailable") >= 1.0);
    assert_eq!(
        during.balance("kraken_balance", "main", "USD", "spot"),
        usd_before
    );
    assert_eq!(
        during.count_for_account("kraken_balance", "main"),
        before.count_for_account("kraken_balance", "main")
    );

    simulator.set_fault(None);
    app.scrape_until("recovered", |s| s.up("main") == 1.0).await;
}

/// A poller on its own, to drive single polls without waiting for the schedule.
fn single_poller(
    simulator: &Simulator,
    account: &TestAccount,
    timeout: Duration,
) -> (AccountPoller, Arc<Metrics>) {
    direct_poller(simulator, &account.settings(), timeout, default_timing())
}

#[tokio::test]
async fn every_kind_of_failure_is_counted_under_its_reason() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let (mut poller, metrics) = single_poller(&simulator, &main, Duration::from_millis(300));
    poller.poll_once().await.expect("the first poll succeeds");

    let kraken = |text: &str| Some(Fault::KrakenError(text.to_string()));
    let cases = [
        (Some(Fault::ServerErrorHtml), ErrorReason::Http),
        (Some(Fault::CdnPage), ErrorReason::Decode),
        (Some(Fault::TruncatedJson), ErrorReason::Decode),
        (Some(Fault::NotEnvelope), ErrorReason::Decode),
        (Some(Fault::Hang), ErrorReason::Timeout),
        (kraken("EAPI:Rate limit exceeded"), ErrorReason::RateLimited),
        (
            kraken("EService: Throttled: 1700000000"),
            ErrorReason::RateLimited,
        ),
        (kraken("EAPI:Invalid key"), ErrorReason::InvalidKey),
        (
            kraken("EAPI:Invalid signature"),
            ErrorReason::InvalidSignature,
        ),
        (
            kraken("EGeneral:Permission denied"),
            ErrorReason::PermissionDenied,
        ),
        (kraken("EAPI:Invalid nonce"), ErrorReason::InvalidNonce),
        (kraken("EGeneral:Temporary lockout"), ErrorReason::Lockout),
        (kraken("EService:Unavailable"), ErrorReason::Unavailable),
        (kraken("EGeneral:Internal error"), ErrorReason::ApiError),
    ];
    for (fault, reason) in cases {
        simulator.set_fault(fault.clone());
        let before = Samples::parse(&metrics.render_text()).errors("main", reason.as_str());
        let err = poller.poll_once().await.expect_err("the poll fails");
        assert_eq!(err.reason, reason, "{fault:?}: {err}");
        let m = Samples::parse(&metrics.render_text());
        assert_eq!(m.errors("main", reason.as_str()), before + 1.0, "{fault:?}");
        assert_eq!(m.up("main"), 0.0);
        assert_eq!(
            m.balance("kraken_balance", "main", "USD", "spot"),
            Some(25435.21),
            "{fault:?}"
        );
    }
    simulator.set_fault(None);
    poller.poll_once().await.expect("recovers");
    let m = Samples::parse(&metrics.render_text());
    assert_eq!(m.up("main"), 1.0);
    assert_eq!(m.value(r#"kraken_polls_total{account="main"}"#), 16.0);
    let errors: f64 = ErrorReason::ALL
        .iter()
        .map(|r| m.errors("main", r.as_str()))
        .sum();
    assert_eq!(errors, 14.0);
}

#[tokio::test]
async fn a_wrong_secret_is_reported_as_an_invalid_signature() {
    let simulator = Simulator::start().await.unwrap();
    let main = TestAccount::new("main", "KEY-main");
    simulator.add_account(
        main.api_key,
        &TestAccount::new("other", "x").secret,
        demo_portfolio(),
    );
    let (mut poller, _) = single_poller(&simulator, &main, Duration::from_secs(2));
    let err = poller.poll_once().await.unwrap_err();
    assert_eq!(err.reason, ErrorReason::InvalidSignature);
    assert!(!simulator.requests()[0].signature_valid);
}

#[tokio::test]
async fn unreachable_kraken_is_an_http_error() {
    let main = TestAccount::new("main", "KEY-main");
    let simulator = Simulator::start().await.unwrap();
    let url = simulator.url();
    drop(simulator);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let client = KrakenClient::new(
        http_client(Duration::from_secs(2)).unwrap(),
        &url,
        SecretString::from(main.api_key.to_string()),
        SecretSlice::from(main.secret.clone()),
    );
    let err = client.balance_ex(None).await.unwrap_err();
    assert_eq!(err.reason, ErrorReason::Http, "{err}");
}
