//! The shipped deployment files: rules checked and unit-tested with promtool, the Kubernetes base and the
//! PrometheusRule kept identical to the rules file, and the invariants operators rely on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

use crate::promtool::prometheus_tool;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn yaml(relative: &str) -> Value {
    serde_yaml::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{text}",
        program.display()
    );
    text
}

#[test]
fn promtool_accepts_and_unit_tests_the_shipped_rules_and_config() {
    let Some(promtool) = prometheus_tool("promtool") else {
        return;
    };
    let checked = run_ok(
        &promtool,
        &["check", "rules", "deploy/prometheus/kraken.rules.yml"],
    );
    assert!(checked.contains("21 rules found"), "{checked}");
    run_ok(
        &promtool,
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
    let tested = run_ok(
        &promtool,
        &[
            "test",
            "rules",
            "deploy/prometheus/tests/kraken.rules.test.yml",
        ],
    );
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Every alerting rule of the rules file, in order.
fn alert_rules(rules: &Value) -> Vec<&Value> {
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_sequence().unwrap())
        .collect()
}

/// The base of every runbook_url: the rules file names it once, on its `# Runbook base:` line (which
/// deploy/prometheus/set-runbook-base.sh reads).
fn runbook_base(rules: &str) -> &str {
    rules
        .lines()
        .find_map(|line| line.strip_prefix("# Runbook base: "))
        .expect("kraken.rules.yml names its runbook base on a \"# Runbook base:\" line")
        .trim()
}

#[test]
fn every_alert_has_severity_summary_description_runbook_and_a_unit_test() {
    let text = read("deploy/prometheus/kraken.rules.yml");
    let rules: Value = serde_yaml::from_str(&text).unwrap();
    let base = runbook_base(&text);
    assert!(
        base.starts_with("https://") && base.ends_with("/docs/alerts.md"),
        "runbook base {base}: an absolute link to docs/alerts.md"
    );
    let tests = read("deploy/prometheus/tests/kraken.rules.test.yml");
    let runbooks = read("docs/alerts.md").to_lowercase();
    let readme = read("README.md");
    assert!(
        readme.contains("(docs/alerts.md)"),
        "the README links the runbooks"
    );
    assert!(
        readme.contains("set-runbook-base.sh"),
        "the README says how to point the runbook links elsewhere"
    );
    let alerts = alert_rules(&rules);
    assert_eq!(alerts.len(), 21);
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        assert!(
            matches!(
                alert["labels"]["severity"].as_str(),
                Some("critical" | "warning")
            ),
            "{name}"
        );
        for annotation in ["summary", "description", "runbook_url"] {
            assert!(
                alert["annotations"][annotation].as_str().is_some(),
                "{name} {annotation}"
            );
        }
        let url = alert["annotations"]["runbook_url"].as_str().unwrap();
        assert_eq!(url, format!("{base}#{}", name.to_lowercase()));
        assert!(
            runbooks.contains(&format!("### {}\n", name.to_lowercase())),
            "docs/alerts.md runbook for {name}"
        );
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "a promtool test for {name}"
        );
    }
}

/// Alert texts print numbers as people write them: every annotation that prints an amount defines
/// the template "amount" with the same text, and none prints a raw `$value`.
#[test]
fn alert_texts_print_amounts_with_one_template() {
    let rules = read("deploy/prometheus/kraken.rules.yml");
    let start = "{{ define \"amount\" }}";
    let end = "{{ end }}{{ end }}";
    let definitions: Vec<&str> = rules
        .match_indices(start)
        .map(|(at, _)| {
            let length = rules[at..].find(end).expect("the definition ends") + end.len();
            &rules[at..at + length]
        })
        .collect();
    assert!(definitions.len() >= 6, "{definitions:#?}");
    assert!(
        definitions.iter().all(|text| *text == definitions[0]),
        "the \"amount\" definitions differ: {definitions:#?}"
    );
    assert!(
        !rules.contains("{{ $value }}"),
        "an annotation prints a raw float"
    );
}

/// What each configured minimum's figure comes from: the minimum's metric, the endpoint whose answer
/// carries the figure, and the minimum's labels besides account, job and instance.
const MINIMUM_SOURCES: &[(&str, &str, &str)] = &[
    ("kraken_spendable_min", "BalanceEx", r#"asset="XBT","#),
    (
        "kraken_balance_available_min",
        "BalanceEx",
        r#"asset="XBT",family="spot","#,
    ),
    ("kraken_margin_level_min_ratio", "TradeBalance", ""),
    ("kraken_futures_margin_ratio_min", "futures/accounts", ""),
];

/// The configured minimums a PromQL expression reads: metric names ending in `_min` or `_min_ratio`.
fn minimum_metrics(expr: &str) -> BTreeSet<&str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.ends_with("_min") || word.ends_with("_min_ratio"))
        .collect()
}

/// A rule's `for:` in whole minutes, rounded up (`90s`, `5m`, `1h`); 0 without one.
fn for_minutes(alert: &Value) -> u64 {
    let Some(text) = alert["for"].as_str() else {
        return 0;
    };
    let (number, unit) = text.split_at(text.len() - 1);
    let number: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("for: {text}: write it in one unit (s, m or h)"));
    match unit {
        "s" => number.div_ceil(60),
        "m" => number,
        "h" => number * 60,
        _ => panic!("for: {text}: write it in one unit (s, m or h)"),
    }
}

/// The pager is never silent about a minimum: for every shipped alert that compares a figure with a
/// configured minimum, promtool evaluates the shipped rules on a minimum without its figure, with the
/// health series of an exporter whose endpoint for that figure fails, and some alert must fire for
/// the account once every `for:` has passed.
#[test]
fn an_alert_fires_when_a_minimum_is_set_and_its_figure_is_missing_because_its_endpoint_fails() {
    let Some(promtool) = prometheus_tool("promtool") else {
        return;
    };
    let rules = yaml("deploy/prometheus/kraken.rules.yml");
    let alerts = alert_rules(&rules);
    // After every `for:`, with a few evaluations to spare.
    let eval_minutes = alerts.iter().copied().map(for_minutes).max().unwrap_or(0) + 5;
    let samples = eval_minutes + 5;
    let endpoints: BTreeSet<&str> = MINIMUM_SOURCES
        .iter()
        .map(|(_, endpoint, _)| *endpoint)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_path("deploy/prometheus/kraken.rules.yml"),
        dir.path().join("kraken.rules.yml"),
    )
    .unwrap();
    let target = r#"job="kraken_exporter",instance="exporter:9877""#;
    let account = format!(r#"account="a",{target}"#);
    let mut cases = 0;
    for alert in &alerts {
        let name = alert["alert"].as_str().unwrap();
        for minimum in minimum_metrics(alert["expr"].as_str().unwrap()) {
            let Some((_, endpoint, labels)) = MINIMUM_SOURCES
                .iter()
                .find(|(metric, _, _)| *metric == minimum)
            else {
                panic!(
                    "{name} compares a figure with {minimum}, which this test does not know: add it to MINIMUM_SOURCES with the endpoint that exports the figure"
                );
            };
            let mut series = vec![
                (
                    format!("{minimum}{{{labels}{account}}}"),
                    format!("2x{samples}"),
                ),
                (format!("up{{{target}}}"), format!("1x{samples}")),
                (
                    format!(r#"kraken_endpoint_up{{endpoint="{endpoint}",{account}}}"#),
                    format!("0x{samples}"),
                ),
                (
                    format!(
                        r#"kraken_endpoint_errors_total{{endpoint="{endpoint}",reason="timeout",{account}}}"#
                    ),
                    format!("0+1x{samples}"),
                ),
            ];
            for known in &endpoints {
                series.push((
                    format!(
                        r#"kraken_endpoint_info{{endpoint="{known}",permission="P",{target}}}"#
                    ),
                    format!("1x{samples}"),
                ));
            }
            if *endpoint == "BalanceEx" {
                // The account's polls fail: kraken_up 0, the last success long ago (Unix time 60).
                series.extend([
                    (format!("kraken_up{{{account}}}"), format!("0x{samples}")),
                    (
                        format!("kraken_last_success_timestamp_seconds{{{account}}}"),
                        format!("60x{samples}"),
                    ),
                    (
                        format!(r#"kraken_poll_errors_total{{reason="timeout",{account}}}"#),
                        format!("0+1x{samples}"),
                    ),
                ]);
            } else {
                // The balances are fine: polled a moment ago.
                series.extend([
                    (format!("kraken_up{{{account}}}"), format!("1x{samples}")),
                    (
                        format!("kraken_last_success_timestamp_seconds{{{account}}}"),
                        format!("1+60x{samples}"),
                    ),
                    (
                        format!(r#"kraken_endpoint_up{{endpoint="BalanceEx",{account}}}"#),
                        format!("1x{samples}"),
                    ),
                ]);
            }
            let mut test = String::from(
                "rule_files:\n  - kraken.rules.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
            );
            for (selector, values) in &series {
                test.push_str(&format!(
                    "      - series: '{selector}'\n        values: \"{values}\"\n"
                ));
            }
            test.push_str(&format!(
                "    promql_expr_test:\n      - expr: 'clamp_max(count(ALERTS{{alertstate=\"firing\",account=\"a\"}}), 1)'\n        eval_time: {eval_minutes}m\n        exp_samples:\n          - labels: '{{}}'\n            value: 1\n"
            ));
            let file = dir.path().join(format!("minimum-{cases}.test.yml"));
            std::fs::write(&file, test).unwrap();
            let out = Command::new(&promtool)
                .args(["test", "rules"])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: with {minimum} set, no figure and {endpoint} failing, no alert fires for the account:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            cases += 1;
        }
    }
    assert!(
        cases >= MINIMUM_SOURCES.len(),
        "every known minimum is compared by a shipped alert ({cases} cases)"
    );
}

#[test]
fn prometheus_rule_embeds_the_rules_file_verbatim() {
    let rules = read("deploy/prometheus/kraken.rules.yml");
    let generated = read("deploy/kubernetes/prometheusrule.yaml");
    let (_, body) = generated
        .split_once("spec:\n")
        .expect("the PrometheusRule has a spec");
    let indented: String = rules
        .lines()
        .map(|line| {
            if line.is_empty() {
                "\n".to_string()
            } else {
                format!("  {line}\n")
            }
        })
        .collect();
    assert_eq!(
        body, indented,
        "deploy/kubernetes/prometheusrule.yaml is out of date: run deploy/kubernetes/generate-prometheusrule.sh"
    );
    let parsed = yaml("deploy/kubernetes/prometheusrule.yaml");
    assert_eq!(parsed["kind"], "PrometheusRule");
    assert_eq!(parsed["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(parsed["spec"], yaml("deploy/prometheus/kraken.rules.yml"));
}

#[test]
fn kubernetes_deployment_runs_one_locked_down_pod() {
    let deployment = yaml("deploy/kubernetes/deployment.yaml");
    let text = read("deploy/kubernetes/deployment.yaml");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert!(
        text.contains("nonce"),
        "the comment explains why one replica"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].as_str().is_some(),
                "{kind}.{resource}"
            );
        }
    }
    assert_eq!(container["ports"][0]["containerPort"], 9877);

    let monitor = yaml("deploy/kubernetes/servicemonitor.yaml");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    let secret = read("deploy/kubernetes/secret.example.yaml");
    assert!(
        secret.contains("replace-with"),
        "the Secret example holds no real value"
    );
}

#[test]
fn kustomize_builds_the_base_when_kubectl_is_available() {
    let Some(kubectl) = crate::helpers::required_tool(
        &["kubectl"],
        "REQUIRE_KUBECTL",
        "apt-get install kubernetes-client",
    ) else {
        return;
    };
    let built = run_ok(&kubectl, &["kustomize", "deploy/kubernetes"]);
    for kind in [
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(
            built.contains(&format!("kind: {kind}")),
            "{kind} in kustomize output"
        );
    }
}

#[test]
fn dockerfile_is_multi_stage_locked_and_non_root() {
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 2
    );
    assert!(dockerfile.contains("--locked"));
    assert!(dockerfile.contains("USER 65532"));
    assert!(dockerfile.contains("EXPOSE 9877"));
    for label in ["title", "description", "version", "revision", "licenses"] {
        assert!(
            dockerfile.contains(&format!("org.opencontainers.image.{label}=")),
            "OCI label {label}"
        );
    }
    assert!(read(".dockerignore").lines().any(|l| l.trim() == "target/"));
    // Cargo refuses a manifest whose declared targets are missing: every [[bench]] file must be copied
    // before the first `cargo build`.
    let first_build = dockerfile
        .find("cargo build")
        .expect("the Dockerfile builds");
    let manifest = read("Cargo.toml");
    if manifest.contains("[[bench]]") {
        assert!(
            dockerfile[..first_build].contains("COPY benches"),
            "benches/ copied before building"
        );
    }
}

#[test]
fn systemd_unit_is_hardened_and_loads_the_secret_as_a_credential() {
    let unit = read("deploy/systemd/kraken_exporter.service");
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "LoadCredential=",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line}");
    }
}

#[test]
fn compose_runs_the_demo_with_prometheus_alertmanager_and_grafana() {
    let compose = yaml("deploy/docker-compose.yml");
    let services = &compose["services"];
    assert_eq!(services["kraken-exporter"]["command"][0], "--demo");
    // An image built through compose knows its revision (the Dockerfile's build argument).
    assert_eq!(
        services["kraken-exporter"]["build"]["args"]["BUILD_GIT_REVISION"],
        "${BUILD_GIT_REVISION:-unknown}"
    );
    for service in ["prometheus", "alertmanager", "grafana"] {
        assert!(services[service].is_mapping(), "{service}");
    }
    let mounts = serde_yaml::to_string(&services["prometheus"]["volumes"]).unwrap();
    assert!(mounts.contains("kraken.rules.yml"));
    let grafana = serde_yaml::to_string(&services["grafana"]["volumes"]).unwrap();
    assert!(grafana.contains("../dashboards"));
    let datasource = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(datasource["datasources"][0]["type"], "prometheus");
}

/// Every dashboard query that reads `kraken_last_success_timestamp_seconds`, evaluated by promtool on
/// an account that never succeeded (timestamp 0) and one that did: only the second gets a value.
#[test]
fn no_dashboard_query_turns_a_zero_timestamp_into_an_age() {
    let Some(promtool) = prometheus_tool("promtool") else {
        return;
    };
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("dashboards/kraken_exporter.json")).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_string))
        .filter(|expr| expr.contains("kraken_last_success_timestamp_seconds"))
        // The input series have no instance label: the variable's All value.
        .map(|expr| expr.replace("$account", ".+").replace("$instance", ".*"))
        .collect();
    assert!(!exprs.is_empty());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.rules.yml"), "groups: []\n").unwrap();
    let mut tests = String::from(
        "rule_files:\n  - empty.rules.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'kraken_last_success_timestamp_seconds{account=\"fresh\"}'\n        values: \"0x10\"\n      - series: 'kraken_last_success_timestamp_seconds{account=\"recent\"}'\n        values: \"240x10\"\n    promql_expr_test:\n",
    );
    for expr in &exprs {
        // At 5 minutes (300 s), the recent account's last success (240 s) is 60 s old.
        tests.push_str(&format!(
            "      - expr: '{}'\n        eval_time: 5m\n        exp_samples:\n          - labels: '{{account=\"recent\"}}'\n            value: 60\n",
            expr.replace('\'', "''")
        ));
    }
    let file = dir.path().join("zero.test.yml");
    std::fs::write(&file, tests).unwrap();
    let out = run_ok(&promtool, &["test", "rules", file.to_str().unwrap()]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The systemd steps without the package, as docs/deployment.md lays them out, run for real (as
/// root, with /etc/kraken_exporter moved to a scratch directory): the unit's user reads the
/// configuration through its group and cannot read the secret, which reaches the service only as
/// the credential the unit names. The old steps made the configuration root-only (`Permission
/// denied` at start). Runs as root only; CI sets REQUIRE_SYSTEMD_LAYOUT=1.
#[test]
fn the_documented_systemd_steps_let_the_units_user_read_the_configuration_and_not_the_secret() {
    use std::os::unix::fs::PermissionsExt;
    let root = running_as_root();
    if !root {
        assert!(
            std::env::var("REQUIRE_SYSTEMD_LAYOUT").ok().as_deref() != Some("1"),
            "REQUIRE_SYSTEMD_LAYOUT=1 needs root"
        );
        eprintln!("SKIPPED: the systemd layout test creates the kraken_exporter user: run as root");
        return;
    }
    let docs = read("docs/deployment.md");
    let section = &docs[docs.find("### Without the package").unwrap()..];
    let start = section.find("```sh\n").unwrap() + 6;
    let block = &section[start..start + section[start..].find("```").unwrap()];
    // Continuation lines joined, one command a line.
    let commands: Vec<String> = block
        .replace("\\\n", " ")
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect();
    let unit = read("deploy/systemd/kraken_exporter.service");
    let user = unit
        .lines()
        .find_map(|line| line.strip_prefix("User="))
        .unwrap()
        .to_string();
    let credential = unit
        .lines()
        .find_map(|line| line.strip_prefix("LoadCredential="))
        .unwrap()
        .to_string();
    // A scratch /etc/kraken_exporter others may traverse to, as /etc is.
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let etc = scratch.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let place = |text: &str| {
        text.replace(
            "/etc/kraken_exporter",
            &etc.join("kraken_exporter").display().to_string(),
        )
    };
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("kraken_exporter.toml"),
        "poll_interval = \"30s\"\n",
    )
    .unwrap();
    std::fs::write(work.path().join("treasury.secret"), "c2VjcmV0\n").unwrap();
    let mut ran = 0;
    for command in &commands {
        let words: Vec<String> = place(command)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        match words[0].as_str() {
            // Installing the binary and the unit, and systemd itself, are not part of this machine.
            "systemctl" => continue,
            "install"
                if words
                    .iter()
                    .any(|w| w.contains("/usr/bin") || w.contains("/etc/systemd")) =>
            {
                continue
            }
            "useradd" if run_ok_status("getent", &["passwd", &user]) => continue,
            "useradd" | "install" => {}
            other => panic!("a step this test does not know: {other:?} in {command:?}"),
        }
        let status = std::process::Command::new(&words[0])
            .args(&words[1..])
            .current_dir(work.path())
            .status()
            .unwrap();
        assert!(status.success(), "{command}");
        ran += 1;
    }
    assert!(
        ran >= 3,
        "the steps install the directory, the configuration and the secret: {commands:?}"
    );
    let as_user = |file: &str| run_ok_status("runuser", &["-u", &user, "--", "cat", file]);
    let config = etc.join("kraken_exporter/kraken_exporter.toml");
    let secret = etc.join("kraken_exporter/treasury.secret");
    assert!(
        as_user(config.to_str().unwrap()),
        "the unit's user reads the configuration"
    );
    assert!(
        !as_user(secret.to_str().unwrap()),
        "the secret stays root's"
    );
    // The secret the steps install is the one the unit's credential reads.
    let (_, source) = credential.split_once(':').unwrap();
    assert_eq!(place(source), secret.display().to_string());
}

/// Whether this process runs as root.
fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Whether `program args` exits 0 (its output discarded).
fn run_ok_status(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
