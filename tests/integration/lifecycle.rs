//! The operator's habits, through the binary: Prometheus-style flags and their aliases, and reloading
//! the configuration by SIGHUP and by `POST /-/reload`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::simulator::Simulator;

use crate::helpers::{eventually, exporter_command, free_port, Exporter, Samples, TestAccount};

fn write_secret(dir: &Path, account: &TestAccount) -> PathBuf {
    crate::helpers::write_secret_file(dir, &format!("{}.secret", account.name), &account.secret)
}

/// A config with `accounts` (each with a USD spendable threshold of `min_usd`).
fn write_config(dir: &Path, api_url: &str, accounts: &[&TestAccount], min_usd: &str) -> PathBuf {
    let mut text =
        format!("api_url = \"{api_url}\"\npoll_interval = \"1s\"\nquote_currencies = []\n");
    for account in accounts {
        text.push_str(&format!(
            "\n[[accounts]]\nname = \"{}\"\napi_key = \"{}\"\napi_secret_file = \"{}\"\n\n[[accounts.min_spendable]]\nasset = \"USD\"\namount = \"{min_usd}\"\n",
            account.name,
            account.api_key,
            write_secret(dir, account).display()
        ));
    }
    let path = dir.join("kraken_exporter.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn min_usd(m: &Samples, account: &str) -> Option<f64> {
    m.get(&format!(
        r#"kraken_spendable_min{{account="{account}",asset="USD"}}"#
    ))
}

const RELOAD_OK: &str = "kraken_exporter_config_last_reload_successful";

async fn reload_by_signal_or_http(by_http: bool) {
    let simulator = Simulator::start().await.unwrap();
    let (a, b, c) = (
        TestAccount::new("alpha", "KEY-alpha"),
        TestAccount::new("bravo", "KEY-bravo"),
        TestAccount::new("charlie", "KEY-charlie"),
    );
    for account in [&a, &b, &c] {
        simulator.add_account(account.api_key, &account.secret, demo_portfolio());
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &simulator.url(), &[&a, &b], "100");
    let config_arg = config.display().to_string();
    let mut args = vec!["--config.file", config_arg.as_str()];
    if by_http {
        args.push("--web.enable-lifecycle");
    }
    let exporter = Exporter::start(&args, &[]);
    let reload = || async {
        if by_http {
            let response = reqwest::Client::new()
                .post(format!("{}/-/reload", exporter.url))
                .send()
                .await
                .unwrap();
            Some(response.status().as_u16())
        } else {
            exporter.hang_up();
            None
        }
    };
    exporter
        .scrape_until("/metrics", "both accounts polled", |m| {
            m.up("alpha") == 1.0 && m.up("bravo") == 1.0
        })
        .await;

    // A good file: bravo goes, charlie comes, alpha's threshold changes.
    write_config(dir.path(), &simulator.url(), &[&a, &c], "250.5");
    let status = reload().await;
    assert!(matches!(status, None | Some(200)), "{status:?}");
    let m = exporter
        .scrape_until("/metrics", "the new configuration", |m| {
            min_usd(m, "alpha") == Some(250.5)
                && m.get(r#"kraken_up{account="charlie"}"#) == Some(1.0)
        })
        .await;
    assert_eq!(m.value(RELOAD_OK), 1.0);
    assert_eq!(
        m.count_for_account("kraken_balance", "bravo"),
        0,
        "removed account's series are gone"
    );
    assert_eq!(m.get(r#"kraken_up{account="bravo"}"#), None);
    assert_eq!(min_usd(&m, "bravo"), None);
    let reloaded_at = m.value("kraken_exporter_config_last_reload_success_timestamp_seconds");

    // A bad file: nothing changes but the reload metric.
    std::fs::write(&config, "poll_interval = \"soon\"\n").unwrap();
    let status = reload().await;
    assert!(matches!(status, None | Some(500)), "{status:?}");
    let m = exporter
        .scrape_until("/metrics", "the failed reload", |m| {
            m.get(RELOAD_OK) == Some(0.0)
        })
        .await;
    assert_eq!(min_usd(&m, "alpha"), Some(250.5));
    assert_eq!(
        m.value("kraken_exporter_config_last_reload_success_timestamp_seconds"),
        reloaded_at
    );
    // Polling goes on under the old configuration.
    let polls = m.value(r#"kraken_polls_total{account="charlie"}"#);
    exporter
        .scrape_until("/metrics", "charlie still polled", |m| {
            m.value(r#"kraken_polls_total{account="charlie"}"#) > polls
        })
        .await;

    // alpha's key stayed through two reloads: Kraken never saw a nonce twice or out of order.
    let alpha: Vec<_> = simulator
        .requests()
        .into_iter()
        .filter(|r| r.api_key == "KEY-alpha")
        .collect();
    assert!(alpha.iter().all(|r| r.error.is_none()), "{alpha:?}");
    let nonces: Vec<u64> = alpha.iter().filter_map(|r| r.nonce).collect();
    assert!(nonces.windows(2).all(|w| w[0] < w[1]));

    let logs = exporter.stop();
    assert!(logs.contains("configuration reloaded"), "{logs}");
    assert!(
        logs.contains("poll_interval"),
        "the bad reload names the problem: {logs}"
    );
}

#[tokio::test]
async fn sighup_reloads_a_good_file_and_keeps_running_on_a_bad_one() {
    reload_by_signal_or_http(false).await;
}

#[tokio::test]
async fn post_reload_with_the_lifecycle_flag_reloads_and_reports_failures() {
    reload_by_signal_or_http(true).await;
}

#[tokio::test]
async fn post_reload_without_the_lifecycle_flag_is_refused() {
    let exporter = Exporter::start(&["--demo"], &[]);
    exporter
        .scrape_until("/metrics", "the demo polled", |m| m.up("treasury") == 1.0)
        .await;
    let client = reqwest::Client::new();
    for method in [reqwest::Method::POST, reqwest::Method::PUT] {
        let response = client
            .request(method.clone(), format!("{}/-/reload", exporter.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("--web.enable-lifecycle"));
    }
    let get = exporter.get("/-/reload").await.unwrap();
    assert_eq!(get.status(), 405);
}

#[tokio::test]
async fn the_telemetry_path_moves_the_metrics() {
    let exporter = Exporter::start(&["--demo", "--web.telemetry-path", "/kraken/metrics"], &[]);
    exporter
        .scrape_until("/kraken/metrics", "metrics on the new path", |m| {
            m.up("treasury") == 1.0
        })
        .await;
    assert_eq!(exporter.get("/metrics").await.unwrap().status(), 404);
    let landing = exporter.get("/").await.unwrap().text().await.unwrap();
    assert!(landing.contains(r#"href="kraken/metrics""#), "{landing}");
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = exporter_command(args, env).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_file_flag_and_its_alias_load_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let account = TestAccount::new("main", "KEY-flags");
    let config = write_config(dir.path(), "https://api.kraken.com", &[&account], "1");
    let config = config.display().to_string();
    for flag in ["--config.file", "--config"] {
        let (code, stdout, stderr) = run(&[flag, &config, "--check-config"], &[]);
        assert_eq!(code, Some(0), "{flag}: {stderr}");
        assert!(stdout.contains("[main]"), "{flag}: {stdout}");
    }
}

#[test]
fn log_format_flag_and_its_alias_write_json_lines() {
    for flag in ["--log.format", "--log-format"] {
        let (code, _, stderr) = run(&["--demo", "--once", flag, "json"], &[]);
        assert_eq!(code, Some(0), "{flag}: {stderr}");
        let lines: Vec<serde_json::Value> = stderr
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{flag}: {e}: {line}"))
            })
            .collect();
        assert!(!lines.is_empty(), "{flag}");
        assert!(lines.iter().all(|l| l["level"].is_string()), "{flag}");
    }
}

#[test]
fn log_level_sets_the_level_and_rust_log_wins_over_it() {
    let levels = |args: &[&str], env: &[(&str, &str)]| {
        let (code, _, stderr) = run(args, env);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        stderr
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["level"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect::<std::collections::BTreeSet<_>>()
    };
    let with = |level: &'static str| {
        [
            "--demo",
            "--once",
            "--log.format",
            "json",
            "--log.level",
            level,
        ]
    };
    let debug = levels(&with("debug"), &[]);
    assert!(debug.contains("DEBUG"), "{debug:?}");
    let error = levels(&with("error"), &[]);
    assert!(
        !error.contains("INFO") && !error.contains("WARN"),
        "{error:?}"
    );
    let info = levels(&with("info"), &[]);
    assert!(info.contains("INFO") && !info.contains("DEBUG"), "{info:?}");
    let overridden = levels(&with("error"), &[("RUST_LOG", "debug")]);
    assert!(
        overridden.contains("DEBUG"),
        "RUST_LOG wins: {overridden:?}"
    );
    // Any case, as operators type it.
    let upper = levels(&with("WARN"), &[]);
    assert!(
        upper.contains("WARN") && !upper.contains("INFO"),
        "{upper:?}"
    );
    let (code, _, stderr) = run(&["--demo", "--once", "--log.level", "loud"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn short_and_long_version_agree_and_help_lists_every_route() {
    let (code, short, _) = run(&["-V"], &[]);
    let (_, long, _) = run(&["--version"], &[]);
    assert_eq!(code, Some(0));
    assert_eq!(short, long);
    assert!(short.contains("revision "), "{short}");
    let (code, help, _) = run(&["--help"], &[]);
    assert_eq!(code, Some(0));
    for route in ["/metrics", "/health", "/ready", "/-/reload", "  /  "] {
        assert!(help.contains(route), "{route}: {help}");
    }
}

#[tokio::test]
async fn a_listen_address_of_only_a_port_listens_on_every_address() {
    let port = free_port();
    let mut child = exporter_command(
        &["--demo", "--web.listen-address", &format!(":{port}")],
        &[],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let url = format!("http://127.0.0.1:{port}/health");
    let outcome = eventually("the exporter listens on :PORT", || async {
        reqwest::get(&url).await.ok().map(|r| r.status())
    })
    .await;
    // Another loopback address reaches it too: it is not bound to one address.
    let other = reqwest::get(format!("http://127.0.0.2:{port}/health")).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(outcome, 200);
    assert_eq!(other.unwrap().status(), 200);
}

#[test]
fn a_telemetry_path_the_exporter_uses_itself_is_refused() {
    for path in ["/health", "/-/reload", "metrics", "/"] {
        let (code, _, stderr) = run(&["--demo", "--web.telemetry-path", path], &[]);
        assert_eq!(code, Some(2), "{path}: {stderr}");
        assert!(stderr.contains("--web.telemetry-path"), "{path}: {stderr}");
    }
}

#[test]
fn systemd_reloads_by_signal_and_kubernetes_sees_configmap_changes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let unit = read("deploy/systemd/kraken_exporter.service");
    assert!(
        unit.lines()
            .any(|l| l == "ExecReload=/bin/kill -HUP $MAINPID"),
        "{unit}"
    );
    assert!(unit.contains("ExecStart=/usr/bin/kraken_exporter --config.file "));
    let deployment: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/kubernetes/deployment.yaml")).unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args = serde_yaml::to_string(&container["args"]).unwrap();
    // Off unless the operator turns it on (the deployment guide's reload step says how).
    assert!(!args.contains("--web.enable-lifecycle"), "{args}");
    assert!(read("docs/deployment.md")
        .contains("add `--web.enable-lifecycle` to the Deployment's `args`"));
    let policy: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/kubernetes/networkpolicy.yaml")).unwrap();
    assert_eq!(policy["spec"]["policyTypes"][0], "Ingress");
    let from = &policy["spec"]["ingress"][0]["from"][0];
    assert_eq!(
        from["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "prometheus"
    );
    assert!(read("deploy/kubernetes/kustomization.yaml").contains("- networkpolicy.yaml"));
    // A subPath mount never sees ConfigMap updates; the config must be mounted as a directory.
    let config_mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "config")
        .unwrap();
    assert!(config_mount.get("subPath").is_none(), "{config_mount:?}");
    let path = config_mount["mountPath"].as_str().unwrap();
    assert!(
        args.contains(&format!("--config.file={path}/kraken_exporter.toml")),
        "{args}"
    );
}

#[tokio::test]
async fn a_storm_of_reloads_is_coalesced_and_never_polls_kraken_early() {
    let simulator = Simulator::start().await.unwrap();
    let a = TestAccount::new("alpha", "KEY-storm");
    simulator.add_account(a.api_key, &a.secret, demo_portfolio());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &simulator.url(), &[&a], "100");
    // A long interval: every BalanceEx call after the first during the storm would be early.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("poll_interval = \"1s\"", "poll_interval = \"30s\"");
    std::fs::write(&config, text).unwrap();
    let config_arg = config.display().to_string();
    let exporter = Exporter::start(
        &["--config.file", &config_arg, "--web.enable-lifecycle"],
        &[],
    );
    exporter
        .scrape_until("/metrics", "the first poll", |m| m.up("alpha") == 1.0)
        .await;
    let calls = || {
        simulator
            .requests()
            .iter()
            .filter(|r| r.path == kraken_exporter::kraken::BALANCE_EX_PATH)
            .count()
    };
    assert_eq!(calls(), 1);
    let client = reqwest::Client::new();
    let posts = (0..60).map(|_| {
        let client = client.clone();
        let url = format!("{}/-/reload", exporter.url);
        async move { client.post(url).send().await.map(|r| r.status().as_u16()) }
    });
    for _ in 0..10 {
        exporter.hang_up();
    }
    let statuses = futures_join_all(posts).await;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200))),
        "{statuses:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        calls(),
        1,
        "no reload polls Kraken before the 30 s schedule"
    );
    let logs = exporter.stop();
    let reloads = logs.matches("configuration reloaded").count();
    assert!(
        (1..=4).contains(&reloads),
        "70 requests, {reloads} reloads: {logs}"
    );
}

/// Runs the futures concurrently and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn the_lifecycle_endpoint_refuses_what_a_browser_sends_for_another_site() {
    let exporter = Exporter::start(&["--demo", "--web.enable-lifecycle"], &[]);
    exporter
        .scrape_until("/metrics", "the demo polled", |m| m.up("treasury") == 1.0)
        .await;
    let client = reqwest::Client::new();
    let url = format!("{}/-/reload", exporter.url);
    let host = exporter.url.trim_start_matches("http://").to_string();
    let post = |headers: &[(&str, &str)]| {
        let mut request = client.post(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move { request.send().await.unwrap() }
    };
    for headers in [
        vec![("origin", "http://attacker.example")],
        vec![("origin", "null")],
        // An empty form posted from any page: no body, so only its type gives it away.
        vec![("content-type", "application/x-www-form-urlencoded")],
        vec![("content-type", "text/plain;charset=UTF-8")],
        vec![("sec-fetch-site", "cross-site")],
        // DNS rebinding: the page's own name now resolves to the exporter; Host and Origin agree.
        vec![
            ("host", "rebind.evil.example:9877"),
            ("origin", "http://rebind.evil.example:9877"),
        ],
        vec![
            ("host", "rebind.evil.example"),
            ("sec-fetch-site", "same-origin"),
        ],
    ] {
        let response = post(&headers).await;
        assert_eq!(response.status(), 403, "{headers:?}");
        assert!(
            response.text().await.unwrap().contains("reload refused"),
            "{headers:?}"
        );
    }
    let origin = format!("http://{host}");
    let port = host.rsplit_once(':').unwrap().1;
    let localhost = format!("localhost:{port}");
    let localhost_origin = format!("http://{localhost}");
    for headers in [
        vec![],
        vec![
            ("origin", origin.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
        vec![
            ("host", localhost.as_str()),
            ("origin", localhost_origin.as_str()),
        ],
        // curl with a name: no browser marker, so the name does not matter.
        vec![("host", "exporter.internal:9877")],
    ] {
        let response = post(&headers).await;
        assert_eq!(response.status(), 200, "{headers:?}");
    }
}

#[tokio::test]
async fn a_reload_of_a_fifo_or_a_device_fails_at_once_and_sigterm_still_ends_the_process() {
    let simulator = Simulator::start().await.unwrap();
    let a = TestAccount::new("alpha", "KEY-files");
    simulator.add_account(a.api_key, &a.secret, demo_portfolio());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &simulator.url(), &[&a], "100");
    let config_arg = config.display().to_string();
    let mut exporter = Exporter::start(&["--config.file", &config_arg], &[]);
    exporter
        .scrape_until("/metrics", "the first poll", |m| m.up("alpha") == 1.0)
        .await;
    // The config file becomes a FIFO nobody writes to: opening it would block for ever.
    std::fs::remove_file(&config).unwrap();
    let c_path = std::ffi::CString::new(config_arg.as_str()).unwrap();
    // SAFETY: a valid, null-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    exporter.hang_up();
    exporter
        .scrape_until("/metrics", "the failed reload", |m| {
            m.get(RELOAD_OK) == Some(0.0)
        })
        .await;
    // Then /dev/zero, through a symlink: refused, not read.
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    exporter.hang_up();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let started = std::time::Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &exporter.child.id().to_string()])
        .status();
    let status = loop {
        if let Some(status) = exporter.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "SIGTERM did not end the process"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    let mut logs = String::new();
    if let Some(mut stderr) = exporter.child.stderr.take() {
        let _ = stderr.read_to_string(&mut logs);
    }
    assert_eq!(
        logs.matches("not a regular file").count(),
        2,
        "both reloads say why: {logs}"
    );
}
