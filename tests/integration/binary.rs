//! The `kraken_exporter` binary itself: `--once`, `--check-config`, `--demo`, exit codes and messages.

use std::process::Output;

use base64::Engine;
use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::simulator::Simulator;

use crate::helpers::{exporter_command, simulator_with_main, Samples, TestAccount};

fn exporter(args: &[&str], env: &[(&str, &str)]) -> Output {
    exporter_command(args, env)
        .output()
        .expect("the binary runs")
}

async fn exporter_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        exporter(&args, &[])
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config file for one account against `api_url`, with the secret in its own file.
fn write_config(dir: &std::path::Path, api_url: &str, api_key: &str, secret: &[u8]) -> String {
    let secret_file = crate::helpers::write_secret_file(dir, "secret", secret);
    let config = dir.join("kraken_exporter.toml");
    std::fs::write(
        &config,
        format!(
            "api_url = \"{api_url}\"\npoll_interval = \"5s\"\n\n[[accounts]]\nname = \"main\"\napi_key = \"{api_key}\"\napi_secret_file = \"{}\"\n",
            secret_file.display()
        ),
    )
    .unwrap();
    config.display().to_string()
}

/// A config for one account against the real API URL (never contacted by these tests).
fn config_for_kraken(api_key: &'static str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let main = TestAccount::new("main", api_key);
    let config = write_config(
        dir.path(),
        "https://api.kraken.com",
        main.api_key,
        &main.secret,
    );
    (dir, config)
}

#[test]
fn once_in_demo_mode_prints_what_was_polled_every_time_with_the_other_core_busy() {
    // Concurrent polls used to publish out of order now and then, printing kraken_up 0 for an account
    // that had just succeeded; a busy core made it likely.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let burner = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        })
    };
    let runs: Vec<Output> = (0..20)
        .map(|_| exporter(&["--demo", "--once"], &[]))
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    burner.join().unwrap();
    for (run, out) in runs.iter().enumerate() {
        assert!(out.status.success(), "run {run}: {}", text(&out.stderr));
        let m = Samples::parse(&text(&out.stdout));
        assert_eq!(m.up("treasury"), 1.0, "run {run}");
        assert_eq!(m.up("trading"), 1.0, "run {run}");
        assert!(m
            .balance("kraken_balance", "treasury", "DOT", "staked")
            .is_some());
        // The never-funded demo account: up, with no balances.
        assert_eq!(m.up("fresh"), 1.0, "run {run}");
        assert_eq!(m.count_for_account("kraken_balance", "fresh"), 0);
        // Its minimum of 0.5 "btc" has its figure, 0 XBT, so the spendable alert pages; its key
        // lacks the Earn permission.
        assert_eq!(
            m.get(r#"kraken_spendable{account="fresh",asset="XBT"}"#),
            Some(0.0),
            "run {run}"
        );
        assert_eq!(
            m.get(r#"kraken_spendable_min{account="fresh",asset="XBT"}"#),
            Some(0.5)
        );
        assert_eq!(
            m.get(r#"kraken_endpoint_up{account="fresh",endpoint="Earn/Allocations"}"#),
            Some(0.0)
        );
        // The demo does not warn about its own polling.
        assert!(
            !text(&out.stderr).contains("points/s"),
            "{}",
            text(&out.stderr)
        );
        assert!(m
            .balance("kraken_balance", "treasury", "KFEE", "fee_credits")
            .is_some());
        assert!(text(&out.stderr).contains("DEMO MODE"));
    }
}

#[tokio::test]
async fn once_against_a_real_client_succeeds_with_the_right_key() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &simulator.url(), main.api_key, &main.secret);

    let out = exporter_async(vec!["--config".into(), config, "--once".into()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = Samples::parse(&text(&out.stdout));
    assert_eq!(
        m.balance("kraken_balance_available", "main", "USD", "spot"),
        Some(17185.45)
    );
}

#[tokio::test]
async fn once_with_a_wrong_secret_exits_1_and_says_why_without_the_secret() {
    let simulator = Simulator::start().await.unwrap();
    let main = TestAccount::new("main", "KEY-main-1234");
    let wrong = TestAccount::new("wrong", "x");
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &simulator.url(), main.api_key, &wrong.secret);

    let out = exporter_async(vec!["--config".into(), config, "--once".into()]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("invalid_signature"), "{stderr}");
    assert!(stderr.contains("EAPI:Invalid signature"), "{stderr}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&wrong.secret);
    assert!(!stderr.contains(&encoded) && !text(&out.stdout).contains(&encoded));
    assert!(!stderr.contains("KEY-main-1234"), "{stderr}");
}

#[test]
fn check_config_summarises_without_secrets() {
    let (_dir, config) = config_for_kraken("KEY-check-config-9876");
    let out = exporter(&["--config", &config, "--check-config"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("1 account(s) [main]"), "{stdout}");
    assert!(stdout.contains("poll_interval 5s"), "{stdout}");
    assert!(!stdout.contains("KEY-check-config"), "{stdout}");
}

#[test]
fn bad_config_exits_non_zero_with_one_line_and_no_panic() {
    let (_dir, config) = config_for_kraken("KEY-main");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("poll_interval", "poll_intervall"),
    )
    .unwrap();
    for args in [
        vec!["--config", config.as_str(), "--check-config"],
        vec!["--config", "/nonexistent/kraken.toml"],
        vec![],
    ] {
        let out = exporter(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("kraken_exporter: error: "), "{stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
}

#[test]
fn check_config_refuses_futures_mistakes_naming_the_key_and_accepts_a_pair_from_the_environment() {
    let (dir, config) = config_for_kraken("KEY-main");
    let base = std::fs::read_to_string(&config).unwrap();
    let secret = dir.path().join("secret");
    let secret_text = std::fs::read_to_string(&secret).unwrap();
    for (extra, expected) in [
        (
            "futures_api_key = \"FUT-half\"\n",
            "futures_api_secret_file is missing",
        ),
        (
            "futures_api_key = \"KEY-main\"\nfutures_api_secret_file = \"$SECRET\"\n",
            "never spot keys",
        ),
    ] {
        let extra = extra.replace("$SECRET", &secret.display().to_string());
        std::fs::write(&config, format!("{base}{extra}")).unwrap();
        let out = exporter(&["--config", &config, "--check-config"], &[]);
        assert_eq!(out.status.code(), Some(2), "{extra}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains(secret_text.trim()), "{stderr}");
    }
    let main = TestAccount::new("main", "KEY-env");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&main.secret);
    let out = exporter(
        &["--check-config"],
        &[
            ("KRAKEN_API_KEY", "KEY-env"),
            ("KRAKEN_API_SECRET", &encoded),
            ("KRAKEN_FUTURES_API_KEY", "FUT-env-key"),
            ("KRAKEN_FUTURES_API_SECRET", &encoded),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("futures [default] at https://futures.kraken.com"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("FUT-env-key") && !stdout.contains(&encoded),
        "{stdout}"
    );
}

#[test]
fn check_config_warns_past_the_rate_limit_and_summarises_each_account() {
    let (_dir, config) = config_for_kraken("KEY-main-rate-1234");
    let base = std::fs::read_to_string(&config).unwrap();
    // Three spot calls every 5 s: 0.6 a second, past Starter's 0.33.
    assert!(base.contains("poll_interval = \"5s\""), "{base}");
    let fast = base + "margin = true\nearn = true\n";
    std::fs::write(&config, &fast).unwrap();
    let out = exporter(&["--config", &config, "--check-config"], &[]);
    assert!(
        out.status.success(),
        "a warning, not a refusal: {}",
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "kraken_exporter: warning: account \"main\": spot calls cost 0.60 points/s (3 every 5s"
        ) && stderr.contains("at least 10s"),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "account \"main\": endpoints [BalanceEx, TradeBalance, Earn/Allocations, GetApiKeyInfo]"
        )
            && stdout.contains("key ...1234")
            && !stdout.contains("KEY-main-rate"),
        "{stdout}"
    );
    // On a Pro key the same polling is within the refill: no warning.
    std::fs::write(&config, format!("rate_limit_tier = \"pro\"\n{fast}")).unwrap();
    let out = exporter(&["--config", &config, "--check-config"], &[]);
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn environment_alone_configures_a_default_account() {
    let main = TestAccount::new("main", "KEY-env");
    let secret = base64::engine::general_purpose::STANDARD.encode(&main.secret);
    let out = exporter(
        &["--check-config"],
        &[
            ("KRAKEN_API_KEY", "KEY-env"),
            ("KRAKEN_API_SECRET", &secret),
            ("KRAKEN_EXPORTER_POLL_INTERVAL", "1m"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("[default]") && stdout.contains("poll_interval 1m"),
        "{stdout}"
    );
}

#[cfg(unix)]
#[test]
fn a_secret_file_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, config) = config_for_kraken("KEY-main");
    let secret = dir.path().join("secret");
    for (mode, warned) in [
        (0o600, false),
        (0o400, false),
        (0o640, true),
        (0o604, true),
        (0o620, true),
        (0o602, true),
    ] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = exporter(&["--config", &config, "--check-config"], &[]);
        assert!(out.status.success());
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr.contains("readable or writable by group or others"),
            warned,
            "{mode:o}: {stderr}"
        );
    }
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A directory others may write: they could replace the file. The sticky bit (as on /tmp)
    // keeps them from it.
    for (mode, warned) in [
        (0o700, false),
        (0o777, true),
        (0o770, true),
        (0o1777, false),
    ] {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let out = exporter(&["--config", &config, "--check-config"], &[]);
        assert!(out.status.success());
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr.contains("directory is writable by group or others"),
            warned,
            "{mode:o}: {stderr}"
        );
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = exporter(
        &["--demo", "--once", "--log-format", "json"],
        &[("RUST_LOG", "info")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.len() >= 3, "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["message"].is_string()));
    assert!(lines.iter().any(|l| l["message"] == "first call succeeded"
        && l["account"] == "treasury"
        && l["endpoint"] == "BalanceEx"));
}

#[tokio::test]
async fn check_config_shows_each_threshold_and_names_an_asset_kraken_does_not_list() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &simulator.url(), main.api_key, &main.secret);
    let with_thresholds = std::fs::read_to_string(&config).unwrap()
        + "[[accounts.min_spendable]]\nasset = \"btc\"\namount = \"0.5\"\n[[accounts.min_spendable]]\nasset = \"XTB\"\namount = \"1\"\n";
    std::fs::write(&config, &with_thresholds).unwrap();
    let out = exporter_async(vec![
        "--config".into(),
        config.clone(),
        "--check-config".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "a warning, not a refusal: {}",
        text(&out.stderr)
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains("thresholds: spendable XBT >= 0.5, XTB >= 1;"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "warning: account \"main\": min_spendable asset \"XTB\" is not an asset Kraken lists"
        ) && stderr.contains("did you mean XBT"),
        "{stderr}"
    );
    assert!(!stderr.contains("asset \"XBT\""), "XBT is listed: {stderr}");
    // Kraken out of reach: the check is skipped with a note, the configuration still passes.
    let offline = with_thresholds.replace(&simulator.url(), "http://127.0.0.1:9");
    std::fs::write(&config, offline).unwrap();
    let out = exporter_async(vec!["--config".into(), config, "--check-config".into()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("note: threshold assets not checked against Kraken's asset list"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_threshold_on_an_asset_kraken_does_not_list_is_warned_about_once_prices_are_read() {
    let (simulator, main) = simulator_with_main(demo_portfolio()).await;
    let dir = tempfile::tempdir().unwrap();
    // quote_currencies defaults to USD: the price task reads Kraken's asset list.
    let config = write_config(dir.path(), &simulator.url(), main.api_key, &main.secret);
    let with_threshold = std::fs::read_to_string(&config).unwrap()
        + "[[accounts.min_available]]\nasset = \"USDD\"\namount = \"1\"\n";
    std::fs::write(&config, with_threshold).unwrap();
    let out = exporter_async(vec!["--config".into(), config, "--once".into()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr
            .matches("min_available asset \"USDD\" is not an asset Kraken lists")
            .count(),
        1,
        "{stderr}"
    );
}

/// The first hour's papercuts, as a new user meets them: each message names what to fix.
#[test]
fn configuration_mistakes_name_the_variable_the_bound_and_the_key_length() {
    let (dir, config) = config_for_kraken("KEY-papercuts-1234");
    // A value from the environment: the variable is named, not only the key.
    let out = exporter(
        &["--config", &config, "--check-config"],
        &[("KRAKEN_EXPORTER_POLL_INTERVAL", "1")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("KRAKEN_EXPORTER_POLL_INTERVAL (set by the environment): poll_interval = \"1\" is not a duration"),
        "{stderr}"
    );
    // A duration that would overflow the schedule is refused with its bound, not a panic later.
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("stale_after = \"300000000000y\"\n{base}")).unwrap();
    let out = exporter(&["--config", &config, "--check-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("stale_after = \"300000000000y\" is longer than the longest allowed, 30days")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    // A private key cut short.
    std::fs::write(&config, &base).unwrap();
    crate::helpers::write_secret_file(dir.path(), "secret", b"abc");
    let out = exporter(&["--config", &config, "--check-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(
            "api_secret_file decodes to 3 bytes, but a Kraken API private key decodes to 64"
        ),
        "{}",
        text(&out.stderr)
    );
    // An environment account next to a file with accounts: said, not silently dropped.
    let main = TestAccount::new("main", "KEY-papercuts-1234");
    crate::helpers::write_secret_file(dir.path(), "secret", &main.secret);
    let out = exporter(
        &["--config", &config, "--check-config"],
        &[("KRAKEN_API_KEY", "KEY-from-the-environment")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("KRAKEN_API_KEY is ignored: the configuration file has [[accounts]]"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn once_does_not_speak_of_retries_it_will_not_make() {
    let simulator = Simulator::start().await.unwrap();
    let main = TestAccount::new("main", "KEY-once-no-retry");
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    simulator.set_fault(Some(kraken_exporter::simulator::Fault::KrakenError(
        "EService:Unavailable".to_string(),
    )));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &simulator.url(), main.api_key, &main.secret);
    let out = exporter_async(vec!["--config".into(), config, "--once".into()]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("call failed"), "{stderr}");
    assert!(
        !stderr.contains("retry_in") && !stderr.contains("last values stay"),
        "{stderr}"
    );
}
