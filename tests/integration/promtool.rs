//! Checks with Prometheus's own tools. They need Debian's `prometheus` package; without it they skip
//! with a message, unless `REQUIRE_PROMETHEUS=1` (as in CI), where a missing tool is a failure.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The path of a Prometheus tool, or `None` (after saying so) when it is missing and not required.
pub fn prometheus_tool(name: &str) -> Option<PathBuf> {
    crate::helpers::required_tool(&[name], "REQUIRE_PROMETHEUS", "apt-get install prometheus")
}

#[test]
fn promtool_finds_nothing_to_complain_about_in_the_demo_metrics() {
    let Some(promtool) = prometheus_tool("promtool") else {
        return;
    };
    let demo = Command::new(env!("CARGO_BIN_EXE_kraken_exporter"))
        .args(["--demo", "--once"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(demo.status.success());
    assert!(String::from_utf8_lossy(&demo.stdout).contains("kraken_balance_available{"));

    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(&demo.stdout).unwrap();
    let result = check.wait_with_output().unwrap();
    assert!(
        result.status.success() && result.stdout.is_empty() && result.stderr.is_empty(),
        "promtool check metrics complained:\n{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
}

/// A child process killed when dropped.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The exporter binary with `args`, listening on a free loopback port; killed when dropped. Its
/// port.
pub fn spawn_exporter(args: &[&str]) -> (Running, u16) {
    let port = crate::helpers::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_kraken_exporter"))
        .args(args)
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Running(child), port)
}

/// A real Prometheus (`binary`) scraping the exporter on `exporter_port` every second as the job
/// `kraken_exporter`, with the shipped rules evaluated every second; its data in `dir`; killed
/// when dropped. Its URL.
pub fn spawn_prometheus(
    binary: &std::path::Path,
    exporter_port: u16,
    dir: &std::path::Path,
) -> (Running, String) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: kraken_exporter\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n",
            crate::helpers::repo_path("deploy/prometheus/kraken.rules.yml").display()
        ),
    )
    .unwrap();
    let port = crate::helpers::free_port();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Running(child), format!("http://127.0.0.1:{port}"))
}
