//! Secrets never leak: the exporter runs at RUST_LOG=trace through a success and every failure, and
//! neither the API secret, nor any API-Sign value it sent, nor the full API key appears in its logs, its
//! /metrics or its error messages.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::simulator::{Fault, Simulator};

use crate::helpers::{eventually, free_port, TestAccount};

#[tokio::test]
async fn no_secret_reaches_logs_metrics_or_errors_at_trace_level() {
    let simulator = Simulator::start().await.unwrap();
    let main = TestAccount::new("main", "KEY-very-secret-api-key-7f3a");
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    // A 2FA password, sent to every endpoint: margin and Earn are on too.
    let otp = "otp-P4ssw0rd-9c1e";
    simulator.set_otp(main.api_key, Some(otp));
    let secret = base64::engine::general_purpose::STANDARD.encode(&main.secret);

    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("main.secret");
    std::fs::write(&secret_file, &secret).unwrap();
    let otp_file = dir.path().join("main.otp");
    std::fs::write(&otp_file, otp).unwrap();
    let config = dir.path().join("kraken_exporter.toml");
    std::fs::write(
        &config,
        format!(
            "api_url = \"{}\"\npoll_interval = \"1s\"\nmax_backoff = \"1s\"\nrequest_timeout = \"1s\"\n\n[[accounts]]\nname = \"main\"\napi_key = \"{}\"\napi_secret_file = \"{}\"\napi_otp_file = \"{}\"\nmargin = true\nearn = true\n",
            simulator.url(),
            main.api_key,
            secret_file.display(),
            otp_file.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kraken_exporter"))
        .args([
            "--config",
            &config.display().to_string(),
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr continuously so the pipe never fills.
    let mut stderr = child.stderr.take().unwrap();
    let log_reader = std::thread::spawn(move || {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs);
        logs
    });

    let kraken = |text: &str| Some(Fault::KrakenError(text.to_string()));
    let faults = [
        None,
        Some(Fault::ServerErrorHtml),
        Some(Fault::CdnPage),
        Some(Fault::Hang),
        Some(Fault::TruncatedJson),
        Some(Fault::NotEnvelope),
        kraken("EAPI:Rate limit exceeded"),
        kraken("EService: Throttled: 1"),
        kraken("EAPI:Invalid key"),
        kraken("EAPI:Invalid signature"),
        kraken("EGeneral:Permission denied"),
        kraken("EAPI:Invalid nonce"),
        kraken("EGeneral:Temporary lockout"),
        kraken("EService:Unavailable"),
        // A proxy and an upstream that echo the request: the 2FA password, the key and the
        // signature are scrubbed from what reaches the log.
        Some(Fault::EchoRequestPage),
        Some(Fault::EchoRequestError),
        None,
    ];
    for fault in faults {
        let seen = simulator.requests().len();
        simulator.set_fault(fault.clone());
        eventually(&format!("a request under {fault:?}"), || async {
            (simulator.requests().len() > seen).then_some(())
        })
        .await;
    }
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Wait for the last (successful) poll to be logged, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    let logs = log_reader.join().unwrap();

    assert!(logs.contains("TRACE"), "the run logged at trace level");
    for reason in [
        "http",
        "decode",
        "timeout",
        "invalid_key",
        "lockout",
        "rate_limited",
    ] {
        assert!(logs.contains(reason), "the log mentions {reason}");
    }
    assert!(
        logs.contains("...7f3a"),
        "the key is identified by its last 4 characters"
    );
    assert!(
        logs.contains("[redacted]"),
        "the echoed request reached the log, scrubbed"
    );
    let signatures: Vec<String> = simulator
        .requests()
        .iter()
        .map(|r| r.api_sign.clone())
        .collect();
    assert!(signatures.len() >= 15);
    assert!(
        simulator
            .requests()
            .iter()
            .any(|r| r.path == "/0/private/TradeBalance" && r.error.is_none()),
        "the 2FA password went with a successful TradeBalance call"
    );
    for (what, text) in [("logs", &logs), ("metrics", &metrics)] {
        assert!(!text.contains(&secret), "the secret leaked into {what}");
        assert!(!text.contains(otp), "the 2FA password leaked into {what}");
        assert!(
            !text.contains(main.api_key),
            "the API key leaked into {what}"
        );
        for signature in &signatures {
            assert!(
                !text.contains(signature.as_str()),
                "an API-Sign value leaked into {what}"
            );
        }
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_secret_given_in_the_environment_is_gone_from_the_process_environment_once_read() {
    let simulator = Simulator::start().await.unwrap();
    let main = TestAccount::new("default", "KEY-env-scrubbed");
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    let secret = base64::engine::general_purpose::STANDARD.encode(&main.secret);
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kraken_exporter"))
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .env_remove("RUST_LOG")
        .env("KRAKEN_API_KEY", main.api_key)
        .env("KRAKEN_API_SECRET", &secret)
        .env("KRAKEN_EXPORTER_API_URL", simulator.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Polling with the secret proves it was read before it was removed.
    let ready = format!("http://127.0.0.1:{port}/ready");
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(response) = reqwest::get(&ready).await {
                if response.status() == 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(outcome.is_ok(), "the exporter polled with the secret");
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        !environ.contains(&secret),
        "the secret is still in /proc/<pid>/environ"
    );
    assert!(environ.contains("KRAKEN_API_KEY=KEY-env-scrubbed"));
}

#[cfg(target_os = "linux")]
#[test]
fn a_crash_leaves_no_core_file_holding_the_secrets() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_kraken_exporter"));
    command
        .args([
            "--demo",
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
        ])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        command.pre_exec(|| {
            let unlimited = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &unlimited);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    // Running, with the demo's keys loaded: then a crash.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the exporter listens");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-ABRT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    std::thread::sleep(Duration::from_millis(200));
    let cores: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("core"))
        .collect();
    assert!(cores.is_empty(), "core files: {cores:?}");
}
