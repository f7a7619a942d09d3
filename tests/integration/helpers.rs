//! Shared test helpers: the real application on port 0 against the simulated Kraken, and a parser for
//! the exposition text so tests compare numbers, not formatting.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use base64::Engine;

use kraken_exporter::app::{Application, ReloadSource, ServeOptions};
use kraken_exporter::config::{AccountSettings, Settings};
use kraken_exporter::http::web_config::WebConfig;
use kraken_exporter::simulator::{generate_secret, Portfolio, SimBalance, Simulator};

pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// One configured account of a test: name, API key, secret, starting portfolio.
pub struct TestAccount {
    pub name: &'static str,
    pub api_key: &'static str,
    pub secret: Vec<u8>,
}

impl TestAccount {
    pub fn new(name: &'static str, api_key: &'static str) -> Self {
        Self {
            name,
            api_key,
            secret: generate_secret(),
        }
    }

    pub fn settings(&self) -> AccountSettings {
        AccountSettings::new(self.name, self.api_key, self.secret.clone())
    }
}

pub fn settings_for(simulator: &Simulator, accounts: &[&TestAccount]) -> Settings {
    let mut settings = Settings::with_defaults(
        simulator.url(),
        accounts.iter().map(|a| a.settings()).collect(),
    );
    settings.poll_interval = POLL_INTERVAL;
    settings.request_timeout = Duration::from_millis(500);
    settings.quote_currencies = vec!["USD".to_string(), "EUR".to_string()];
    settings
}

/// A running exporter; stops (like SIGTERM) when dropped.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn spawn(settings: &Settings) -> Self {
        Self::spawn_with_web(settings, WebConfig::default()).await
    }

    /// As [`TestApp::spawn`], serving with TLS, authentication and headers from `web`; `address`
    /// then still starts with `http://`, whatever the scheme.
    pub async fn spawn_with_web(settings: &Settings, web: WebConfig) -> Self {
        let options = ServeOptions {
            web,
            ..ServeOptions::default()
        };
        Self::spawn_with(settings, options, None).await
    }

    /// The one spawn helper: the real application with these options and reload source.
    pub async fn spawn_with(
        settings: &Settings,
        options: ServeOptions,
        reload: Option<ReloadSource>,
    ) -> Self {
        let app = Application::build_with(settings, "127.0.0.1:0", options, reload)
            .await
            .expect("the application builds");
        let address = format!("http://{}", app.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    /// Stops like a SIGTERM would and waits for the application to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = &mut self.task;
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the application stops within 5 s")
            .expect("the application task did not panic")
            .expect("the application exits cleanly");
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the exporter answers")
    }

    pub async fn scrape(&self) -> Samples {
        let response = self.get("/metrics").await;
        assert_eq!(response.status(), 200);
        Samples::parse(&response.text().await.expect("a text body"))
    }

    /// Scrapes until `check` holds, or fails after 10 s with the last scrape.
    pub async fn scrape_until(&self, what: &str, check: impl Fn(&Samples) -> bool) -> Samples {
        eventually(what, || async {
            let samples = self.scrape().await;
            check(&samples).then_some(samples)
        })
        .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Retries `attempt` every 50 ms for up to 10 s.
pub async fn eventually<T, F, Fut>(what: &str, attempt: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(
        what,
        Duration::from_secs(10),
        Duration::from_millis(50),
        attempt,
    )
    .await
}

/// Retries `attempt` every `every` for up to `within`.
pub async fn eventually_within<T, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    attempt: F,
) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Parsed samples: `name{label="value",...}` exactly as exposed -> value.
#[derive(Debug, Clone)]
pub struct Samples {
    pub text: String,
    pub values: BTreeMap<String, f64>,
}

impl Samples {
    pub fn parse(text: &str) -> Self {
        let values = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    other => other.parse().expect("a sample value is a float"),
                };
                (series.to_string(), value)
            })
            .collect();
        Self {
            text: text.to_string(),
            values,
        }
    }

    pub fn get(&self, series: &str) -> Option<f64> {
        self.values.get(series).copied()
    }

    /// The value of a series that must exist.
    pub fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("series {series} is missing from:\n{}", self.text))
    }

    /// A balance-family series for one account, asset and family.
    pub fn balance(&self, metric: &str, account: &str, asset: &str, family: &str) -> Option<f64> {
        self.get(&format!(
            r#"{metric}{{account="{account}",asset="{asset}",family="{family}"}}"#
        ))
    }

    /// Series whose name starts with `prefix` and whose labels contain `account="..."`.
    pub fn count_for_account(&self, metric: &str, account: &str) -> usize {
        let needle = format!(r#"account="{account}""#);
        self.values
            .keys()
            .filter(|k| k.starts_with(&format!("{metric}{{")) && k.contains(&needle))
            .count()
    }

    pub fn up(&self, account: &str) -> f64 {
        self.value(&format!(r#"kraken_up{{account="{account}"}}"#))
    }

    pub fn errors(&self, account: &str, reason: &str) -> f64 {
        self.value(&format!(
            r#"kraken_poll_errors_total{{account="{account}",reason="{reason}"}}"#
        ))
    }
}

/// Builds a portfolio from (raw key, balance, hold_trade) with 10 decimals, Kraken's padding for crypto.
pub fn portfolio(entries: &[(&str, SimBalance)]) -> Portfolio {
    entries
        .iter()
        .map(|(key, balance)| (key.to_string(), balance.clone()))
        .collect()
}

/// A running simulator with one account, `main` (API key `KEY-main`), holding `holdings`.
pub async fn simulator_with_main(holdings: Portfolio) -> (Simulator, TestAccount) {
    let simulator = Simulator::start().await.expect("the simulator starts");
    let main = TestAccount::new("main", "KEY-main");
    simulator.add_account(main.api_key, &main.secret, holdings);
    (simulator, main)
}

/// The exporter binary with a clean environment (no `RUST_LOG`, no variable of the environment account), stdin closed, and
/// `env` set.
pub fn exporter_command(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kraken_exporter"));
    command.args(args).stdin(std::process::Stdio::null());
    command.env_remove("RUST_LOG");
    for variable in kraken_exporter::config::ACCOUNT_VARIABLES {
        command.env_remove(variable);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// A poller of `account` on its own, against `simulator`, to drive single polls without the schedule;
/// with its metrics. Requests time out after `timeout`; every endpoint follows `timing`. Built by the
/// exporter's own wiring ([`kraken_exporter::polling::running::build`]), so it is the poller production runs.
pub fn direct_poller(
    simulator: &Simulator,
    account: &AccountSettings,
    timeout: Duration,
    timing: kraken_exporter::polling::schedule::PollTiming,
) -> (
    kraken_exporter::polling::poller::AccountPoller,
    std::sync::Arc<kraken_exporter::metrics::Metrics>,
) {
    use kraken_exporter::polling::running;

    let mut settings = Settings::with_defaults(simulator.url(), vec![account.clone()]);
    settings.request_timeout = timeout;
    settings.poll_interval = timing.interval;
    settings.max_backoff = timing.max_backoff;
    settings.stale_after = timing.stale_after;
    settings.futures_api_url = simulator.url();
    let outputs = running::Outputs::new(&[&account.name]);
    let http = running::http_for(&settings).expect("an HTTP client");
    let mut parts = running::build(&settings, &http, &outputs, &running::NonceBook::default());
    (parts.pollers.remove(0), outputs.metrics)
}

/// The schedule of the default configuration: 30 s polls, 15 minutes of backoff at most, no
/// `stale_after`.
pub fn default_timing() -> kraken_exporter::polling::schedule::PollTiming {
    kraken_exporter::polling::schedule::PollTiming {
        interval: kraken_exporter::config::DEFAULT_POLL_INTERVAL,
        max_backoff: kraken_exporter::config::DEFAULT_MAX_BACKOFF,
        stale_after: None,
    }
}

/// The first of `names` found on `PATH`, or `None` (after saying so) when none is and the
/// variable `required_by` is not `1`; with it set (as in CI), a missing tool is a failure.
pub fn required_tool(
    names: &[&str],
    required_by: &str,
    install: &str,
) -> Option<std::path::PathBuf> {
    let found = names.iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
    });
    if found.is_none() {
        let name = names[0];
        assert!(
            std::env::var(required_by).ok().as_deref() != Some("1"),
            "{name} is required ({required_by}=1) but not on PATH; {install}"
        );
        eprintln!("SKIPPED: {name} not on PATH; {install} to run this test");
    }
    found
}

/// Writes `secret` base64-encoded into `dir/name`, as a secret file holds a key's private key; its
/// path.
pub fn write_secret_file(dir: &std::path::Path, name: &str, secret: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        base64::engine::general_purpose::STANDARD.encode(secret),
    )
    .unwrap();
    path
}

/// A loopback port that was free a moment ago, for a server started as another process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free loopback port")
        .local_addr()
        .expect("a bound address")
        .port()
}

/// Writes a config for `account` against `simulator` with `extra` account keys, runs `--once`, and
/// returns the exit code, the parsed metrics and the log.
pub async fn once(
    simulator: &Simulator,
    account: &TestAccount,
    extra: &str,
) -> (Option<i32>, Samples, String) {
    once_at(simulator, account, extra, "debug").await
}

/// [`once`] with the log at `level` (`trace` through `RUST_LOG`, which `--log.level` does not offer).
pub async fn once_at(
    simulator: &Simulator,
    account: &TestAccount,
    extra: &str,
    level: &'static str,
) -> (Option<i32>, Samples, String) {
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret_file(dir.path(), "secret", &account.secret);
    let extra = extra.replace("$DIR", &dir.path().display().to_string());
    let config = dir.path().join("kraken_exporter.toml");
    std::fs::write(
        &config,
        format!(
            "api_url = \"{}\"\nfutures_api_url = \"{}\"\nquote_currencies = []\n\n[[accounts]]\nname = \"{}\"\napi_key = \"{}\"\napi_secret_file = \"{}\"\n{extra}\n",
            simulator.url(),
            simulator.url(),
            account.name,
            account.api_key,
            secret.display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let dir_path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let _keep = dir_path;
        exporter_command(
            &[
                "--config.file",
                &config,
                "--once",
                "--log.level",
                if level == "trace" { "debug" } else { level },
            ],
            if level == "trace" {
                &[("RUST_LOG", "trace")]
            } else {
                &[]
            },
        )
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    drop(dir);
    (
        out.status.code(),
        Samples::parse(&String::from_utf8_lossy(&out.stdout)),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A file of this repository.
pub fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The exporter binary as a child process on a free port; killed when dropped.
pub struct Exporter {
    pub child: std::process::Child,
    pub url: String,
}

impl Exporter {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut command = exporter_command(args, env);
        command
            .arg("--web.listen-address")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        Self {
            child: command.spawn().unwrap(),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn get(&self, path: &str) -> Option<reqwest::Response> {
        reqwest::get(format!("{}{path}", self.url)).await.ok()
    }

    pub async fn scrape_until(
        &self,
        path: &str,
        what: &str,
        check: impl Fn(&Samples) -> bool,
    ) -> Samples {
        self.scrape_within(path, what, Duration::from_secs(10), check)
            .await
    }

    /// As [`Exporter::scrape_until`], waiting up to `within`.
    pub async fn scrape_within(
        &self,
        path: &str,
        what: &str,
        within: Duration,
        check: impl Fn(&Samples) -> bool,
    ) -> Samples {
        eventually_within(what, within, Duration::from_millis(100), || async {
            let response = self.get(path).await?;
            if response.status() != 200 {
                return None;
            }
            let samples = Samples::parse(&response.text().await.ok()?);
            check(&samples).then_some(samples)
        })
        .await
    }

    pub fn hang_up(&self) {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Stops the exporter and returns what it logged.
    pub fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let mut logs = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut logs);
        }
        let _ = self.child.wait();
        logs
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
