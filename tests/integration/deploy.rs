//! The shipped deployment files: rules checked and unit-tested with promtool, the Kubernetes base and the
//! PrometheusRule kept identical to the rules file, and the invariants operators rely on.

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
    assert!(checked.contains("10 rules found"), "{checked}");
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

#[test]
fn every_alert_has_severity_summary_description_runbook_and_a_unit_test() {
    let rules = yaml("deploy/prometheus/kraken.rules.yml");
    let tests = read("deploy/prometheus/tests/kraken.rules.test.yml");
    let readme = read("README.md").to_lowercase();
    let alerts: Vec<&Value> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_sequence().unwrap())
        .collect();
    assert_eq!(alerts.len(), 10);
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
        let anchor = alert["annotations"]["runbook_url"].as_str().unwrap();
        assert_eq!(anchor, format!("README.md#{}", name.to_lowercase()));
        assert!(
            readme.contains(&format!("### {}", name.to_lowercase())),
            "README runbook for {name}"
        );
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "a promtool test for {name}"
        );
    }
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
        .map(|expr| expr.replace("$account", ".+"))
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
