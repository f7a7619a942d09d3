//! The HTTP endpoints: readiness, health, landing page, methods and paths.

use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::simulator::Fault;

use crate::helpers::{settings_for, simulator_with_main, TestApp};

#[tokio::test]
async fn ready_waits_for_every_account_and_health_does_not() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    simulator.set_fault(Some(Fault::KrakenError("EAPI:Invalid key".into())));
    let app = TestApp::spawn(&settings_for(&simulator, &[&main])).await;
    app.scrape_until("a failed poll", |s| s.errors("main", "invalid_key") >= 1.0)
        .await;

    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503);
    let text = ready.text().await.unwrap();
    assert!(text.contains("1 account(s)"), "{text}");
    assert!(!text.contains("main"), "/ready names no account: {text}");
    assert_eq!(app.get("/health").await.status(), 200);

    simulator.set_fault(None);
    app.scrape_until("recovered", |s| s.up("main") == 1.0).await;
    assert_eq!(app.get("/ready").await.status(), 200);
}

#[tokio::test]
async fn landing_page_links_the_endpoints_and_shows_the_version() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let app = TestApp::spawn(&settings_for(&simulator, &[&main])).await;
    let page = app.get("/").await.text().await.unwrap();
    for link in [
        "href=\"metrics\"",
        "href=\"health\"",
        "href=\"ready\"",
        env!("CARGO_PKG_VERSION"),
    ] {
        assert!(page.contains(link), "{link} in {page}");
    }
}

#[tokio::test]
async fn the_landing_page_is_gzipped_for_a_browser_that_accepts_it() {
    use std::io::Read;
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let app = TestApp::spawn(&settings_for(&simulator, &[&main])).await;
    app.scrape_until("first poll", |s| s.up("main") == 1.0)
        .await;
    let url = format!("{}/", app.address);
    // What a browser sends.
    let gzipped = app
        .http
        .get(&url)
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert_eq!(
        gzipped.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert_eq!(gzipped.headers()["vary"], "Accept-Encoding");
    let compressed = gzipped.bytes().await.unwrap();
    let mut page = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut page)
        .unwrap();
    for part in ["href=\"metrics\"", "<td>main</td>", "</html>"] {
        assert!(page.contains(part), "{part} in {page}");
    }
    assert!(compressed.len() * 2 < page.len());

    let plain = app.get("/").await;
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["content-type"], "text/html; charset=utf-8");
    assert!(plain.text().await.unwrap().contains("<td>main</td>"));
}

#[tokio::test]
async fn metrics_answers_get_and_head_only_with_the_text_format() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let app = TestApp::spawn(&settings_for(&simulator, &[&main])).await;
    let url = format!("{}/metrics", app.address);

    let get = app.http.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(
        get.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(app.http.head(&url).send().await.unwrap().status(), 200);
    assert_eq!(app.http.post(&url).send().await.unwrap().status(), 405);
    assert_eq!(app.get("/nope").await.status(), 404);
}

#[tokio::test]
async fn metrics_are_gzipped_when_the_scraper_accepts_it() {
    use std::io::Read;
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let app = TestApp::spawn(&settings_for(&simulator, &[&main])).await;
    app.scrape_until("first poll", |s| s.up("main") == 1.0)
        .await;
    let url = format!("{}/metrics", app.address);

    // What Prometheus sends.
    let gzipped = app
        .http
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let compressed = gzipped.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains(r#"kraken_up{account="main"} 1"#), "{text}");
    assert!(text.contains("process_resident_memory_bytes"));
    assert!(
        compressed.len() * 2 < text.len(),
        "compressed {} of {}",
        compressed.len(),
        text.len()
    );

    for refused in ["gzip;q=0", "identity", "br"] {
        let plain = app
            .http
            .get(&url)
            .header("accept-encoding", refused)
            .send()
            .await
            .unwrap();
        assert!(
            plain.headers().get("content-encoding").is_none(),
            "{refused}"
        );
        assert!(
            plain.text().await.unwrap().contains("kraken_up{"),
            "{refused}"
        );
    }
}
