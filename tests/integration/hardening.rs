//! What the client refuses from upstream: redirects (which would carry the signed request elsewhere)
//! and answers too large to be Kraken's.

use std::time::Duration;

use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::kraken::client::{http_client, MAX_RESPONSE_BYTES};
use kraken_exporter::kraken::public::PublicClient;
use kraken_exporter::kraken::{ErrorReason, KrakenClient, BALANCE_EX_PATH};
use kraken_exporter::simulator::{Fault, Simulator};
use secrecy::{SecretSlice, SecretString};

use crate::helpers::{simulator_with_main, TestAccount};

fn client_for(simulator: &Simulator, account: &TestAccount, timeout: Duration) -> KrakenClient {
    KrakenClient::new(
        http_client(timeout).unwrap(),
        &simulator.url(),
        SecretString::from(account.api_key.to_string()),
        SecretSlice::from(account.secret.clone()),
    )
}

#[tokio::test]
async fn a_redirect_is_an_http_error_naming_the_location_and_is_not_followed() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    // Another host that would accept the key: it must never see the signed request.
    let elsewhere = Simulator::start().await.unwrap();
    elsewhere.add_account(main.api_key, &main.secret, demo_portfolio());
    let location = format!("{}{BALANCE_EX_PATH}", elsewhere.url());
    simulator.set_fault(Some(Fault::Redirect(location.clone())));

    let err = client_for(&simulator, &main, Duration::from_secs(5))
        .balance_ex(None)
        .await
        .expect_err("a redirect is not an answer");
    assert_eq!(err.reason, ErrorReason::Http, "{err}");
    assert!(err.message.contains("307"), "{err}");
    assert!(err.message.contains(&location), "{err}");
    assert!(
        elsewhere.requests().is_empty(),
        "the signed request was re-sent to the redirect target"
    );

    simulator.set_public_fault(Some(Fault::Redirect(format!(
        "{}/0/public/Assets",
        elsewhere.url()
    ))));
    let public = PublicClient::new(
        http_client(Duration::from_secs(5)).unwrap(),
        &simulator.url(),
    );
    let err = public
        .assets()
        .await
        .expect_err("a redirect is not an answer");
    assert_eq!(err.reason, ErrorReason::Http, "{err}");
}

#[tokio::test]
async fn an_endless_answer_is_cut_off_at_the_size_cap_as_a_decode_error() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    simulator.set_fault(Some(Fault::EndlessBody));
    // With a long timeout, only the cap can end the read: a timeout here would mean it read on.
    let err = client_for(&simulator, &main, Duration::from_secs(60))
        .balance_ex(None)
        .await
        .expect_err("an endless answer is refused");
    assert_eq!(err.reason, ErrorReason::Decode, "{err}");
    assert!(
        err.message
            .contains(&format!("{} MiB", MAX_RESPONSE_BYTES >> 20)),
        "{err}"
    );

    simulator.set_public_fault(Some(Fault::EndlessBody));
    let public = PublicClient::new(
        http_client(Duration::from_secs(60)).unwrap(),
        &simulator.url(),
    );
    let err = public.last_prices().await.expect_err("refused");
    assert_eq!(err.reason, ErrorReason::Decode, "{err}");
}

#[tokio::test]
async fn an_announced_oversize_answer_is_refused_unread() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    simulator.set_fault(Some(Fault::HugeContentLength));
    let err = client_for(&simulator, &main, Duration::from_secs(60))
        .balance_ex(None)
        .await
        .expect_err("refused");
    assert_eq!(err.reason, ErrorReason::Decode, "{err}");
    assert!(err.message.contains("refused unread"), "{err}");
}

#[tokio::test]
async fn concurrent_calls_on_one_key_reach_kraken_with_increasing_nonces() {
    // The simulator refuses a nonce not above the last one it saw, as Kraken does; so every call
    // succeeding proves the client signs and sends in nonce order under its one lock.
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let client = std::sync::Arc::new(client_for(&simulator, &main, Duration::from_secs(5)));
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let client = std::sync::Arc::clone(&client);
            tokio::spawn(async move { client.balance_ex(None).await })
        })
        .collect();
    for call in calls {
        call.await
            .unwrap()
            .expect("no call is refused for its nonce");
    }
    let nonces: Vec<u64> = simulator
        .requests()
        .iter()
        .map(|r| r.nonce.expect("every request carries a nonce"))
        .collect();
    assert_eq!(nonces.len(), 32);
    assert!(nonces.windows(2).all(|w| w[0] < w[1]), "{nonces:?}");
}

#[tokio::test]
async fn rows_adding_up_past_the_decimal_range_fail_the_poll_and_polling_goes_on() {
    use crate::helpers::{settings_for, TestApp};

    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    // Each row is a valid decimal; XXBT and XBT.F together exceed Decimal's range (about 7.9e28).
    simulator.set_recorded(
        main.api_key,
        BALANCE_EX_PATH,
        Some(
            br#"{"error":[],"result":{"XXBT":{"balance":"50000000000000000000000000000","hold_trade":"0"},"XBT.F":{"balance":"50000000000000000000000000000","hold_trade":"0"}}}"#
                .to_vec(),
        ),
    );
    let mut settings = settings_for(&simulator, &[&main]);
    settings.poll_interval = Duration::from_millis(200);
    settings.max_backoff = Duration::from_millis(400);
    let app = TestApp::spawn(&settings).await;
    let m = app
        .scrape_until("two failed polls", |s| {
            s.get(r#"kraken_poll_errors_total{account="main",reason="decode"}"#) >= Some(2.0)
        })
        .await;
    assert_eq!(m.up("main"), 0.0);
    // The poll task lives on: a sane answer is exported at the next attempt.
    simulator.set_recorded(main.api_key, BALANCE_EX_PATH, None);
    let m = app
        .scrape_until("a good poll", |s| {
            s.get(r#"kraken_up{account="main"}"#) == Some(1.0)
        })
        .await;
    assert!(m.balance("kraken_balance", "main", "XBT", "spot").is_some());
    app.stop().await;
}

#[tokio::test]
async fn an_answer_with_more_rows_than_max_assets_is_refused_and_the_last_values_stay() {
    use crate::helpers::{settings_for, TestApp};

    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let mut settings = settings_for(&simulator, &[&main]);
    settings.max_assets = demo_portfolio().len();
    settings.poll_interval = Duration::from_millis(200);
    settings.max_backoff = Duration::from_millis(400);
    let app = TestApp::spawn(&settings).await;
    app.scrape_until("the demo portfolio", |s| s.up("main") == 1.0)
        .await;
    // One row more than allowed.
    let mut bigger = demo_portfolio();
    bigger.insert(
        "EXTRA".to_string(),
        kraken_exporter::simulator::SimBalance::new("1", "0", 0),
    );
    simulator.set_portfolio(main.api_key, bigger);
    let m = app
        .scrape_until("a refused answer", |s| {
            s.get(r#"kraken_poll_errors_total{account="main",reason="decode"}"#) >= Some(1.0)
        })
        .await;
    assert_eq!(m.up("main"), 0.0);
    assert!(m
        .balance("kraken_balance", "main", "EXTRA", "spot")
        .is_none());
    assert!(m.balance("kraken_balance", "main", "XBT", "spot").is_some());
    app.stop().await;
}
