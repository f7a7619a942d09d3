//! The HTTP server's protections: TLS with rotation and client certificates, basic auth, headers,
//! refused bodies, hostile clients, graceful shutdown.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use std::time::Duration;

use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::http::listener::MAX_PER_ADDRESS;
use kraken_exporter::http::web_config::WebConfig;
use kraken_exporter::simulator::Simulator;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::helpers::{eventually, free_port, settings_for, simulator_with_main, TestApp};

/// A test certificate authority.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A leaf certificate for 127.0.0.1: (certificate PEM, key PEM).
    fn issue(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// The exporter running with a web config, against a healthy simulator.
struct WebApp {
    url: String,
    _app: TestApp,
    _simulator: Simulator,
}

async fn spawn_with_web(web: WebConfig, scheme: &str) -> WebApp {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let app = TestApp::spawn_with_web(&settings_for(&simulator, &[&main]), web).await;
    WebApp {
        url: app.address.replacen("http", scheme, 1),
        _app: app,
        _simulator: simulator,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn load(dir: &Path, yaml: &str) -> Result<WebConfig, String> {
    let path = dir.join("web.yml");
    std::fs::write(&path, yaml).unwrap();
    WebConfig::load(&path).map_err(|e| e.to_string())
}

fn client_trusting(ca_pem: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn tls_serves_metrics_and_picks_up_a_rotated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    let (cert, key) = old_ca.issue("exporter");
    let cert_file = write(dir.path(), "tls.crt", &cert);
    let key_file = write(dir.path(), "tls.key", &key);
    let web = load(
        dir.path(),
        &format!("tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n  min_version: TLS12\n"),
    )
    .unwrap();
    let app = spawn_with_web(web, "https").await;

    let trusts_old = client_trusting(&old_ca.pem()).build().unwrap();
    let response = trusts_old
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("kraken_up"));
    let plain = format!("{}/metrics", app.url.replacen("https", "http", 1));
    let plain_ok = reqwest::get(&plain).await.is_ok_and(|r| r.status() == 200);
    assert!(!plain_ok, "plain HTTP is not served on the TLS port");

    // Rotate: new files in place, no restart.
    let (cert, key) = new_ca.issue("exporter");
    write(dir.path(), "tls.key", &key);
    write(dir.path(), "tls.crt", &cert);
    let trusts_new = client_trusting(&new_ca.pem()).build().unwrap();
    // The files are checked off the handshake, about once a second.
    let response = crate::helpers::eventually("the rotated certificate is served", || async {
        trusts_new
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .ok()
    })
    .await;
    assert_eq!(response.status(), 200);
    let fresh_old_client = client_trusting(&old_ca.pem()).build().unwrap();
    assert!(fresh_old_client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .is_err());
}

/// TLS with a certificate from `server_ca`, requiring client certificates from the CAs written to
/// `clients.crt` in `dir`.
fn mutual_tls(dir: &Path, server_ca: &Ca, client_cas_pem: &str) -> WebConfig {
    let (cert, key) = server_ca.issue("exporter");
    load(
        dir,
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            write(dir, "tls.crt", &cert),
            write(dir, "tls.key", &key),
            write(dir, "clients.crt", client_cas_pem),
        ),
    )
    .unwrap()
}

/// A client trusting `server_ca` that presents a certificate issued by `issuer`.
fn client_with_certificate(server_ca: &Ca, issuer: &Ca) -> reqwest::Client {
    let (cert, key) = issuer.issue("prometheus");
    client_trusting(&server_ca.pem())
        .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn client_certificates_are_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let app = spawn_with_web(mutual_tls(dir.path(), &ca, &ca.pem()), "https").await;
    let url = format!("{}/metrics", app.url);

    let anonymous = client_trusting(&ca.pem()).build().unwrap();
    assert!(
        anonymous.get(&url).send().await.is_err(),
        "no client certificate is refused"
    );
    let unknown = client_with_certificate(&ca, &Ca::new("other CA"));
    assert!(
        unknown.get(&url).send().await.is_err(),
        "a certificate from another CA is refused"
    );
    let known = client_with_certificate(&ca, &ca);
    assert_eq!(known.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_rotated_client_ca_file_is_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let (old_clients, new_clients) = (Ca::new("old client CA"), Ca::new("new client CA"));
    let web = mutual_tls(dir.path(), &server_ca, &old_clients.pem());
    let app = spawn_with_web(web, "https").await;
    let url = format!("{}/metrics", app.url);
    let client_of = |clients: &Ca| client_with_certificate(&server_ca, clients);
    assert_eq!(
        client_of(&old_clients)
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(client_of(&new_clients).get(&url).send().await.is_err());

    // The files are checked off the handshake, about once a second.
    let accepted = |clients: &Ca| {
        let client = client_of(clients);
        let url = url.clone();
        async move {
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    };
    write(dir.path(), "clients.crt", &new_clients.pem());
    crate::helpers::eventually("the new client CA is trusted", || async {
        accepted(&new_clients).await.then_some(())
    })
    .await;
    assert!(client_of(&old_clients).get(&url).send().await.is_err());

    // A CA file the operator removed is trusted no more, until one is back.
    std::fs::remove_file(dir.path().join("clients.crt")).unwrap();
    crate::helpers::eventually("the removed CA is trusted no more", || async {
        (!accepted(&new_clients).await).then_some(())
    })
    .await;
    write(dir.path(), "clients.crt", &new_clients.pem());
    crate::helpers::eventually("the CA back is trusted again", || async {
        accepted(&new_clients).await.then_some(())
    })
    .await;
}

#[tokio::test]
async fn basic_auth_protects_metrics_but_not_the_probes() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret-scrape", 4)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    let web = load(
        dir.path(),
        &format!(
            "basic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
        ),
    )
    .unwrap();
    let app = spawn_with_web(web, "http").await;
    let http = reqwest::Client::new();
    let metrics = format!("{}/metrics", app.url);

    let anonymous = http.get(&metrics).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let wrong = http
        .get(&metrics)
        .basic_auth("prometheus", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let unknown = http
        .get(&metrics)
        .basic_auth("root", Some("s3cret-scrape"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    for _ in 0..3 {
        let right = http
            .get(&metrics)
            .basic_auth("prometheus", Some("s3cret-scrape"))
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200);
        assert_eq!(right.headers()["x-frame-options"], "deny");
        assert_eq!(right.headers()["x-content-type-options"], "nosniff");
    }
    assert_eq!(
        http.get(format!("{}/", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let health = http
        .get(format!("{}/health", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["x-frame-options"], "deny");
    eventually("/ready answers 200 without credentials", || async {
        let ready = http.get(format!("{}/ready", app.url)).send().await.ok()?;
        (ready.status() == 200).then_some(())
    })
    .await;

    // The scheme name is case-insensitive (RFC 7617).
    let encoded = base64::engine::general_purpose::STANDARD.encode("prometheus:s3cret-scrape");
    for scheme in ["basic", "BASIC", "Basic"] {
        let response = http
            .get(&metrics)
            .header("authorization", format!("{scheme} {encoded}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn passwords_past_bcrypts_72_bytes_are_refused_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    // A truncating check reads only 72 bytes: any suffix of this password would pass for it.
    let long = "p".repeat(72);
    let long_hash = bcrypt::hash(&long, 4).unwrap();
    let short = "q".repeat(71);
    let short_hash = bcrypt::hash(&short, 4).unwrap();
    let web = load(
        dir.path(),
        &format!("basic_auth_users:\n  long: '{long_hash}'\n  short: '{short_hash}'\n"),
    )
    .unwrap();
    let app = spawn_with_web(web, "http").await;
    let http = reqwest::Client::new();
    let metrics = format!("{}/metrics", app.url);
    let status = |user: &'static str, password: String| {
        let request = http.get(&metrics).basic_auth(user, Some(password));
        async move { request.send().await.unwrap().status() }
    };
    for suffix in ["x", "anything", "0123456789"] {
        assert_eq!(
            status("long", format!("{long}{suffix}")).await,
            401,
            "{suffix}"
        );
    }
    // bcrypt counts a terminating zero byte: 71 bytes is the longest password it reads whole.
    assert_eq!(status("long", long.clone()).await, 401);
    assert_eq!(status("short", short.clone()).await, 200);
    assert_eq!(status("short", format!("{short}x")).await, 401);
}

/// A flood of wrong passwords from four addresses fills the bcrypt queue; Prometheus' first login
/// (not remembered yet) from a fifth waits its turn among the addresses, not behind the whole
/// flood, as it did in a first-come-first-served queue.
#[tokio::test]
async fn a_flood_of_wrong_passwords_does_not_keep_prometheus_first_login_waiting_behind_it() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret-scrape", 10).unwrap();
    let web = load(
        dir.path(),
        &format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
    )
    .unwrap();
    let app = spawn_with_web(web, "http").await;
    let metrics = format!("{}/metrics", app.url);
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    for last in 3..=6u8 {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()
            .unwrap();
        for _ in 0..10 {
            let (client, metrics) = (client.clone(), metrics.clone());
            let (refused, stop) = (Arc::clone(&refused), Arc::clone(&stop));
            attackers.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(response) = client
                        .get(&metrics)
                        .basic_auth("prometheus", Some("guess"))
                        .send()
                        .await
                    {
                        assert_eq!(response.status(), 401);
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
    }
    // The queue fills: 40 requests wait for 2 verifications at a time.
    crate::helpers::eventually("the flood is under way", || {
        let refused = Arc::clone(&refused);
        async move { (refused.load(Ordering::SeqCst) >= 20).then_some(()) }
    })
    .await;
    let prometheus = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let before = refused.load(Ordering::SeqCst);
    let response = prometheus
        .get(&metrics)
        .basic_auth("prometheus", Some("s3cret-scrape"))
        .send()
        .await
        .unwrap();
    let while_waiting = refused.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::SeqCst);
    assert_eq!(response.status(), 200);
    // One turn of each flooding address and the two in progress, not the 40 queued.
    assert!(
        while_waiting <= 12,
        "{while_waiting} wrong passwords were checked while Prometheus waited"
    );
    for attacker in attackers {
        let _ = attacker.await;
    }
}

#[tokio::test]
async fn unknown_users_take_as_long_as_known_users_with_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    // Cost 10, as `htpasswd -B` and most guides make them.
    let hash = bcrypt::hash("s3cret-scrape", 10).unwrap();
    let web = load(
        dir.path(),
        &format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
    )
    .unwrap();
    let app = spawn_with_web(web, "http").await;
    let http = reqwest::Client::new();
    let metrics = format!("{}/metrics", app.url);
    let median_time = |user: &'static str| {
        let http = http.clone();
        let metrics = metrics.clone();
        async move {
            let mut times = Vec::new();
            for _ in 0..5 {
                let started = std::time::Instant::now();
                let response = http
                    .get(&metrics)
                    .basic_auth(user, Some("wrong"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 401);
                times.push(started.elapsed());
            }
            times.sort();
            times[2]
        }
    };
    let known = median_time("prometheus").await;
    let unknown = median_time("nobody").await;
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    // Before the dummy hash had the users' cost, an unknown user took about 3 times as long.
    assert!(
        (0.6..1.6).contains(&ratio),
        "unknown user {unknown:?} vs known user {known:?}"
    );
}

#[test]
fn web_config_mistakes_are_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let (cert, key) = ca.issue("exporter");
    let cert_file = write(dir.path(), "tls.crt", &cert);
    let key_file = write(dir.path(), "tls.key", &key);
    let other_key = write(
        dir.path(),
        "other.key",
        &KeyPair::generate().unwrap().serialize_pem(),
    );
    let tls = |extra: &str| {
        format!("tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n{extra}")
    };
    let cases = [
        (tls("  min_version: TLS10\n"), "min_version"),
        (
            tls("  client_auth_type: RequireAndVerifyClientCert\n"),
            "client_ca_file",
        ),
        (
            tls("  client_auth_type: RequireAnyClientCert\n"),
            "client_auth_type",
        ),
        (
            tls("  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
            "cipher_suites",
        ),
        (tls("  cert_fle: x\n"), "cert_fle"),
        (
            format!("tls_server_config:\n  cert_file: {cert_file}\n  key_file: {other_key}\n"),
            "does not match",
        ),
        (
            format!("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: {key_file}\n"),
            "/nonexistent.crt",
        ),
        (
            "basic_auth_users:\n  alice: plaintext\n".to_string(),
            "basic_auth_users.alice",
        ),
        // A cost-31 hash would make each login take days (and hold a verification slot).
        (
            "basic_auth_users:\n  alice: $2y$31$OsdlPJmDdjVSrfcmGdNTDOOcmyBSz3bQJTvk9B9WTlJmVjPdUvtT6\n".to_string(),
            "bcrypt cost 31 is above the 14",
        ),
        (
            "http_server_config:\n  headers:\n    Server: nginx\n".to_string(),
            "headers.Server",
        ),
        (
            "basic_auth_user:\n  alice: x\n".to_string(),
            "basic_auth_user",
        ),
    ];
    for (yaml, needle) in cases {
        let message = load(dir.path(), &yaml)
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{yaml}"));
        assert!(
            message.contains(needle),
            "{message:?} should name {needle:?}"
        );
        assert!(message.starts_with("--web.config.file "), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
    assert!(
        load(dir.path(), "").is_ok(),
        "an empty file means no TLS and no auth"
    );
}

#[tokio::test]
async fn request_bodies_are_refused() {
    let app = spawn_with_web(WebConfig::default(), "http").await;
    let response = reqwest::Client::new()
        .get(format!("{}/metrics", app.url))
        .body("x".repeat(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

/// A client on 127.0.0.1 that keeps a connection busy: a request every second, answers read. Ends
/// when the exporter closes the connection; `alive` counts the connections still open.
async fn busy_connection(address: String, alive: Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await else {
        return;
    };
    alive.fetch_add(1, Ordering::SeqCst);
    let mut buffer = [0u8; 4096];
    loop {
        if stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: exporter\r\n\r\n")
            .await
            .is_err()
        {
            break;
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    alive.fetch_sub(1, Ordering::SeqCst);
}

#[tokio::test]
async fn hundreds_of_busy_connections_from_one_address_leave_room_for_another() {
    let app = spawn_with_web(WebConfig::default(), "http").await;
    let address = app.url.trim_start_matches("http://").to_string();
    // More keep-alive connections from 127.0.0.1 than the exporter has slots for, each busy.
    let alive = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..600)
        .map(|_| tokio::spawn(busy_connection(address.clone(), Arc::clone(&alive))))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Newcomers take the place of idle ones (asked to close, each client notices at its next
    // request); once all have come, the address is down to its share.
    crate::helpers::eventually("the address is down to its share of connections", || {
        let alive = Arc::clone(&alive);
        async move { (alive.load(Ordering::SeqCst) <= MAX_PER_ADDRESS).then_some(()) }
    })
    .await;
    // Prometheus on another address is served within seconds.
    let prometheus = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..3 {
        let scrape = prometheus
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .expect("a scrape from another address is served");
        assert_eq!(scrape.status(), 200);
        assert!(scrape.text().await.unwrap().contains("kraken_up"));
    }
    for attacker in attackers {
        attacker.abort();
    }
}

#[tokio::test]
async fn idle_connections_give_way_to_a_scraper_on_the_same_address() {
    let app = spawn_with_web(WebConfig::default(), "http").await;
    let address = app.url.trim_start_matches("http://").to_string();
    // Twice the address's share of idle connections (they never send a request), held open.
    let mut idle = Vec::new();
    for _ in 0..2 * MAX_PER_ADDRESS {
        if let Ok(stream) = tokio::net::TcpStream::connect(&address).await {
            idle.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A scraper on the same address, a new connection per scrape, gets every scrape in.
    let scraper = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for scrape in 0..10 {
        // More idle connections keep arriving between scrapes.
        for _ in 0..8 {
            if let Ok(stream) = tokio::net::TcpStream::connect(&address).await {
                idle.push(stream);
            }
        }
        let response = scraper
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("scrape {scrape} from the flooded address: {e}"));
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().contains("kraken_up"));
    }
    // The idle connections were closed to make room: most of them read end-of-stream.
    let mut closed = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(
            Duration::from_millis(20),
            tokio::io::AsyncReadExt::read(stream, &mut byte),
        )
        .await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= idle.len() - MAX_PER_ADDRESS,
        "{closed} of {} closed",
        idle.len()
    );
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_disconnected() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_with_web(WebConfig::default(), "http").await;
    let address = app.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    // Pipelined scrapes, answers never read: the exporter's writes stop making progress, then it
    // must close the connection (10 s without progress); our writes then fail.
    let request = b"GET /metrics HTTP/1.1\r\nHost: exporter\r\n\r\n".repeat(64);
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Err(error) = stream.write_all(&request).await {
                return error;
            }
        }
    })
    .await;
    let error = outcome.expect("the exporter closed the connection of a client that does not read");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_and_sigint_stop_the_exporter_cleanly_within_five_seconds() {
    for signal in ["-TERM", "-INT"] {
        let port = free_port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kraken_exporter"))
            .args([
                "--demo",
                "--web.listen-address",
                &format!("127.0.0.1:{port}"),
            ])
            .env_remove("RUST_LOG")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let ready = format!("http://127.0.0.1:{port}/ready");
        eventually("the exporter is ready", || async {
            let response = reqwest::get(&ready).await.ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
        let killed = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "still running 5 s after {signal}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "{signal}: {status:?}");
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(stderr.contains("shutting down"), "{stderr}");
    }
}

#[tokio::test]
async fn request_headers_past_the_read_buffer_are_refused_and_hold_no_more_than_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_with_web(WebConfig::default(), "http").await;
    let address = app.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    // 64 KiB of one header, far past the 16 KiB buffer.
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: exporter\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Normal scrapes are not affected.
    let scrape = reqwest::get(format!("{}/metrics", app.url)).await.unwrap();
    assert_eq!(scrape.status(), 200);
}
