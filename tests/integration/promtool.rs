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
