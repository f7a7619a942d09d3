//! The README's first hour, followed literally: every command of its `sh` blocks is run (the demo,
//! `chmod` of the secret, `--check-config` and `--once` on the README's own configuration against the
//! simulator, `promtool check rules`), or named here as one a test cannot run, so a command added to
//! the README, or one that stops working, fails this test.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kraken_exporter::simulator::{SimBalance, Simulator};

use crate::helpers::{exporter_command, portfolio, repo_path, TestAccount};

/// Commands of the README a test does not run, and why.
const NOT_RUN_HERE: &[(&str, &str)] = &[
    ("cargo test", "this is the test suite"),
    (
        "cp deploy/prometheus/kraken.rules.yml /etc/prometheus/rules/",
        "installs into a Prometheus this machine does not run; the rules are checked by promtool",
    ),
    (
        "docker compose -f deploy/docker-compose.yml up --build",
        "no container engine runs here; CI builds the image and checks the compose file",
    ),
];

/// The commands of the README's `sh` blocks, in order.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in readme.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            command if in_sh && !command.is_empty() => commands.push(command.to_string()),
            _ => {}
        }
    }
    commands
}

/// The README's `toml` block: the example configuration.
fn readme_configuration() -> String {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let start = readme
        .find("```toml\n")
        .expect("the README shows a configuration")
        + 8;
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end].to_string()
}

/// The README's paths in a command or the configuration, moved into `dir`.
fn relocated(text: &str, dir: &Path) -> String {
    text.replace("/etc/kraken_exporter", &dir.display().to_string())
}

#[tokio::test]
async fn the_readmes_first_hour_commands_work_as_written() {
    let commands = readme_commands();
    assert!(commands.len() >= 5, "{commands:?}");
    // The README's account, against the simulator: it holds a little bitcoin, less than its minimum.
    let simulator = Simulator::start().await.unwrap();
    let configuration = readme_configuration();
    let api_key = configuration
        .lines()
        .find_map(|line| line.strip_prefix("api_key = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("the configuration names an api_key");
    let treasury = TestAccount::new("treasury", "unused");
    simulator.add_account(
        api_key,
        &treasury.secret,
        portfolio(&[
            ("XXBT", SimBalance::new("0.2000000000", "0.0000000000", 10)),
            ("ZUSD", SimBalance::new("100.0000", "0.0000", 4)),
        ]),
    );
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::write_secret_file(dir.path(), "treasury.secret", &treasury.secret);
    // The one line the README's file lacks to reach the simulator instead of Kraken.
    let config = format!(
        "api_url = \"{}\"\n{}",
        simulator.url(),
        relocated(&configuration, dir.path())
    );
    std::fs::write(dir.path().join("kraken_exporter.toml"), config).unwrap();

    let mut ran = Vec::new();
    for command in &commands {
        if let Some((_, why)) = NOT_RUN_HERE.iter().find(|(c, _)| c == command) {
            eprintln!("not run here ({why}): {command}");
            continue;
        }
        let words: Vec<String> = relocated(command, dir.path())
            .split_whitespace()
            .map(str::to_string)
            .collect();
        match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["cargo", "run", "--release", "--", "--demo"] => demo_serves_the_status_page().await,
            ["chmod", mode, file] => {
                let out = Command::new("chmod").args([mode, file]).output().unwrap();
                assert!(out.status.success(), "{command}");
            }
            ["kraken_exporter", args @ ..] => {
                let owned: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                // Off the runtime, which serves the simulator meanwhile.
                let out = tokio::task::spawn_blocking(move || {
                    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
                    exporter_command(&args, &[]).output().unwrap()
                })
                .await
                .unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "{command}: {stderr}");
                if args.contains(&"--check-config") {
                    // The summary line as the README shows it, up to the key's last characters.
                    let readme = std::fs::read_to_string(crate::helpers::repo_path("README.md"))
                        .unwrap();
                    let shown = readme
                        .lines()
                        .find(|line| line.trim_start().starts_with("account \"treasury\": endpoints"))
                        .and_then(|line| line.trim().split("; key ").next())
                        .expect("the README shows the summary of its example account")
                        .to_string();
                    assert!(
                        stdout.contains(&format!("{shown}; key ")),
                        "the summary the README shows ({shown}): {stdout}"
                    );
                    assert!(!stderr.contains("warning"), "{stderr}");
                }
                if args.contains(&"--once") {
                    assert!(
                        stdout.contains("kraken_spendable{account=\"treasury\",asset=\"XBT\"} 0.2")
                            && stdout
                                .contains("kraken_spendable_min{account=\"treasury\",asset=\"XBT\"} 0.5"),
                        "{stdout}"
                    );
                }
            }
            ["promtool", args @ ..] => {
                let Some(promtool) = crate::promtool::prometheus_tool("promtool") else {
                    continue;
                };
                let out = Command::new(promtool)
                    .args(args)
                    .current_dir(repo_path(""))
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{command}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            _ => panic!(
                "the README's command {command:?} is neither run by this test nor in NOT_RUN_HERE: add it to one"
            ),
        }
        ran.push(command.clone());
    }
    for expected in ["--demo", "--check-config", "--once", "chmod"] {
        assert!(
            ran.iter().any(|command| command.contains(expected)),
            "the README's first hour has a {expected} step: {commands:?}"
        );
    }
}

/// `--demo` as the README runs it: the status page at `/` shows the thresholds, `/metrics` answers.
async fn demo_serves_the_status_page() {
    let (_demo, port) = crate::promtool::spawn_exporter(&["--demo"]);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    let page = crate::helpers::eventually_within(
        "the demo's status page shows its accounts' thresholds",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let page = http
                .get(format!("{url}/"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            page.contains("<td>fresh</td><td>spendable XBT</td>")
                .then_some(page)
        },
    )
    .await;
    assert!(page.contains("<h2>Thresholds</h2>"), "{page}");
    let metrics = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
}
