//! Money that moves, through the binary against the simulator: every ledger entry counted once
//! (bursts while the exporter pages, shared times across page boundaries, a restart in the middle
//! with a state file), the rate counter never exceeded, a corrupt state file, withdrawals and
//! deposits in flight, and the endpoints' own health.

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use kraken_exporter::demo::demo_portfolio;
use kraken_exporter::kraken::funding::Direction;
use kraken_exporter::simulator::{SimEntry, SimMovement, Simulator};

use crate::helpers::{once, write_secret_file, Exporter, Samples, TestAccount};

/// What the counters must say, computed from the simulator's ledger on its own: entries, in, out
/// and fee per (type, asset label), counting the entries after `after` (the history of a first
/// start).
fn expected(
    entries: &[SimEntry],
    after: usize,
) -> BTreeMap<(String, String), (u64, Decimal, Decimal, Decimal)> {
    let mut sums: BTreeMap<(String, String), (u64, Decimal, Decimal, Decimal)> = BTreeMap::new();
    for entry in &entries[after..] {
        let asset = kraken_exporter::kraken::assets::classify(&entry.asset).asset;
        let sum = sums.entry((entry.kind.clone(), asset)).or_default();
        sum.0 += 1;
        if entry.amount > Decimal::ZERO {
            sum.1 += entry.amount;
        } else {
            sum.2 -= entry.amount;
        }
        if entry.fee > Decimal::ZERO {
            sum.3 += entry.fee;
        } else {
            sum.1 -= entry.fee;
        }
    }
    sums
}

/// The (type, asset) whose counters differ from `sums`, with what was scraped.
fn mismatches(
    m: &Samples,
    account: &str,
    sums: &BTreeMap<(String, String), (u64, Decimal, Decimal, Decimal)>,
) -> Vec<String> {
    sums.iter().filter(|((kind, asset), (n, amount_in, amount_out, fee))| {
        let at = |name: &str, extra: &str| {
            m.get(&format!(
                r#"{name}{{account="{account}",asset="{asset}",{extra}type="{kind}"}}"#
            ))
        };
        !(at("kraken_ledger_entries_total", "") == Some(*n as f64)
            && at("kraken_ledger_amount_total", r#"direction="in","#) == nearest(amount_in)
            && at("kraken_ledger_amount_total", r#"direction="out","#) == nearest(amount_out)
            && at("kraken_ledger_fee_total", "") == nearest(fee))
    }).map(|((kind, asset), sums)| {
        let entries = m.get(&format!(r#"kraken_ledger_entries_total{{account="{account}",asset="{asset}",type="{kind}"}}"#));
        format!("{kind} {asset}: expected {sums:?}, scraped {entries:?} entries")
    }).collect()
}

/// The warnings about the ledger in a log (the rate warning of a test's fast polls is not one).
fn ledger_warnings(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|line| {
            line.contains("WARN") && (line.contains("ledger") || line.contains("Ledgers"))
        })
        .collect()
}

/// The scrape once the counters equal `sums`, or a failure naming what differs after `seconds`.
async fn counted(
    exporter: &Exporter,
    sums: &BTreeMap<(String, String), (u64, Decimal, Decimal, Decimal)>,
    seconds: u64,
) -> Samples {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(response) = exporter.get("/metrics").await {
            let m = Samples::parse(&response.text().await.unwrap_or_default());
            let wrong = mismatches(&m, "main", sums);
            if wrong.is_empty() {
                return m;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "after {seconds} s: {wrong:#?}"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The nearest `f64` to an exact sum (Rust's parser rounds correctly).
fn nearest(sum: &Decimal) -> Option<f64> {
    sum.to_string().parse().ok()
}

fn config(dir: &Path, simulator: &Simulator, main: &TestAccount, top: &str, extra: &str) -> String {
    let secret = write_secret_file(dir, "main.secret", &main.secret);
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let path = dir.join("kraken_exporter.toml");
    std::fs::write(
        &path,
        format!(
            "api_url = \"{}\"\nquote_currencies = []\n{top}\n[[accounts]]\nname = \"main\"\napi_key = \"{}\"\napi_secret_file = \"{}\"\nkey_info = false\nledger = true\n{extra}\n",
            simulator.url(),
            main.api_key,
            secret.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// `--once` through the binary with `state_dir` set to `dir`: the exit code, the metrics and the log.
async fn once_with_state(
    dir: &Path,
    simulator: &Simulator,
    main: &TestAccount,
) -> (Option<i32>, Samples, String) {
    let config = config(
        dir,
        simulator,
        main,
        &format!("state_dir = \"{}\"", dir.display()),
        "",
    );
    // Blocking on the binary off the runtime, which serves the simulator.
    let out = tokio::task::spawn_blocking(move || {
        crate::helpers::exporter_command(&["--config.file", &config, "--once"], &[])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code(),
        Samples::parse(&String::from_utf8_lossy(&out.stdout)),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Appends a burst of `n` entries: 7 to each `time`, fractional, of several types and assets (a page
/// boundary falls inside shared times), amounts and fees of up to 10 decimals.
fn burst(simulator: &Simulator, main: &TestAccount, first: usize, n: usize) {
    const KINDS: [(&str, &str); 5] = [
        ("trade", "XXBT"),
        ("trade", "ZUSD"),
        ("withdrawal", "XETH"),
        ("staking", "DOT.S"),
        ("invite bonus", "KFEE"),
    ];
    let rows: Vec<(Decimal, String, String, String, String)> = (first..first + n)
        .map(|i| {
            let (kind, asset) = KINDS[i % KINDS.len()];
            let time = Decimal::new(17_000_000_000_000 + (i / 7) as i64 * 3_217, 4);
            let sign = if i % 3 == 0 { "-" } else { "" };
            (
                time,
                kind.to_string(),
                asset.to_string(),
                format!("{sign}{}.{:010}", i % 97, (i * 7_919) % 10_000_000_000),
                format!("0.{:04}", i % 13),
            )
        })
        .collect();
    let borrowed: Vec<(Decimal, &str, &str, &str, &str)> = rows
        .iter()
        .map(|(t, k, a, amount, fee)| (*t, k.as_str(), a.as_str(), amount.as_str(), fee.as_str()))
        .collect();
    simulator.push_ledger(main.api_key, &borrowed);
}

#[tokio::test]
async fn thousands_of_entries_in_bursts_and_a_restart_with_a_state_file_are_each_counted_once() {
    let main = TestAccount::new("main", "KEY-ledger-bursts");
    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    // History: never counted.
    burst(&simulator, &main, 0, 120);
    let history = simulator.ledger(main.api_key).len();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let config = config(
        dir.path(),
        &simulator,
        &main,
        &format!(
            "poll_interval = \"1s\"\nledger_interval = \"1s\"\nledger_pages = 4\nstate_dir = \"{}\"\n",
            state.display()
        ),
        "",
    );
    let exporter = Exporter::start(&["--config.file", &config], &[]);
    exporter
        .scrape_until("/metrics", "the first ledger poll", |m| {
            m.get(r#"kraken_ledger_last_entry_timestamp_seconds{account="main",type="staking"}"#)
                .is_some()
        })
        .await;
    // Bursts larger than one poll reads (200 entries), while it pages.
    let mut next = history;
    for _ in 0..6 {
        burst(&simulator, &main, next, 250);
        next += 250;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    // A restart in the middle of a window (a backlog half read): the state file carries the book.
    let file = state.join("ledger-main.json");
    let mut waited = 0;
    loop {
        burst(&simulator, &main, next, 250);
        next += 250;
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap_or_default()).unwrap_or_default();
        if !saved["book"]["window"].is_null() {
            break;
        }
        waited += 1;
        assert!(
            waited < 50,
            "no window half read in the state file: {saved}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let logs = exporter.stop();
    assert_eq!(ledger_warnings(&logs), Vec::<&str>::new());
    assert!(state.join("ledger-main.json").exists());
    for _ in 0..6 {
        burst(&simulator, &main, next, 250);
        next += 250;
    }
    let exporter = Exporter::start(&["--config.file", &config], &[]);
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        burst(&simulator, &main, next, 180);
        next += 180;
    }
    let ledger = simulator.ledger(main.api_key);
    assert_eq!(ledger.len(), next);
    assert!(next >= history + 3_970, "{next}");
    let sums = expected(&ledger, history);
    let m = counted(&exporter, &sums, 45).await;
    // Nothing more, either: no series beyond the expected ones has a count.
    let total: f64 = sums.values().map(|s| s.0 as f64).sum();
    let counted: f64 = m
        .values
        .iter()
        .filter(|(series, _)| series.starts_with("kraken_ledger_entries_total{"))
        .map(|(_, value)| value)
        .sum();
    assert_eq!(counted, total);
    assert_eq!(
        m.get(r#"kraken_ledger_last_entry_timestamp_seconds{account="main",type="withdrawal"}"#),
        ledger
            .iter()
            .filter(|e| e.kind == "withdrawal")
            .map(|e| e.time)
            .max()
            .and_then(|t| t.to_f64())
    );
    let logs = exporter.stop();
    assert_eq!(ledger_warnings(&logs), Vec::<&str>::new());
}

#[tokio::test]
async fn a_backlog_is_read_within_krakens_rate_counter_as_the_rule_allows() {
    let main = TestAccount::new("main", "KEY-ledger-rate");
    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    simulator.set_rate_limit(main.api_key, Some("pro"));
    burst(&simulator, &main, 0, 10);
    let dir = tempfile::tempdir().unwrap();
    // 1 point every 10 s and 2 pages of 2 points every 5 s: 0.9 points a second, under Pro's 1.
    let top = "poll_interval = \"10s\"\nrate_limit_tier = \"pro\"\nledger_interval = \"5s\"\nledger_pages = 2\n";
    let config = config(dir.path(), &simulator, &main, top, "");
    let check =
        crate::helpers::exporter_command(&["--config.file", &config, "--check-config"], &[])
            .output()
            .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        check.status.success() && !stderr.contains("points/s"),
        "{stderr}"
    );
    let exporter = Exporter::start(&["--config.file", &config], &[]);
    exporter
        .scrape_until("/metrics", "the first ledger poll", |m| {
            m.get(r#"kraken_endpoint_up{account="main",endpoint="Ledgers"}"#) == Some(1.0)
        })
        .await;
    // A backlog of 12 pages arrives at once.
    burst(&simulator, &main, 10, 600);
    let sums = expected(&simulator.ledger(main.api_key), 10);
    counted(&exporter, &sums, 60).await;
    let requests = simulator.requests();
    let refused: Vec<_> = requests.iter().filter(|r| r.error.is_some()).collect();
    assert!(
        refused.is_empty(),
        "Kraken refused: {:?}",
        refused.iter().map(|r| &r.error).collect::<Vec<_>>()
    );
    // Over several polls: the backlog's 12 pages at 2 a poll span 5 polls of 5 s at least.
    let pages: Vec<std::time::Instant> = requests
        .iter()
        .filter(|r| r.path == kraken_exporter::kraken::ledgers::PATH)
        .map(|r| r.received_at)
        .collect();
    let span = *pages.last().unwrap() - pages[pages.len() - 12];
    assert!(span >= std::time::Duration::from_secs(20), "{span:?}");
    exporter.stop();
    // The same configuration asking for more than the tier refills is warned about.
    let too_fast = top.replace("ledger_interval = \"5s\"", "ledger_interval = \"2s\"");
    let config = self::config(dir.path(), &simulator, &main, &too_fast, "");
    let check =
        crate::helpers::exporter_command(&["--config.file", &config, "--check-config"], &[])
            .output()
            .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("spot calls cost 2.10 points/s"), "{stderr}");
}

#[tokio::test]
async fn a_corrupt_state_file_starts_fresh_with_a_warning_and_loses_nothing_else() {
    let main = TestAccount::new("main", "KEY-ledger-corrupt");
    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    burst(&simulator, &main, 0, 30);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ledger-main.json");
    std::fs::write(
        &file,
        b"{\"version\":1,\"account\":\"main\",\"book\":{\"star",
    )
    .unwrap();
    let (code, m, stderr) = once_with_state(dir.path(), &simulator, &main).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("the ledger state file is unusable") && stderr.contains("ledger-main.json"),
        "{stderr}"
    );
    // The balances and the rest are there; the ledger starts over from now.
    assert_eq!(m.up("main"), 1.0);
    assert!(m.balance("kraken_balance", "main", "XBT", "spot").is_some());
    assert_eq!(
        m.get(r#"kraken_ledger_entries_total{account="main",asset="XBT",type="trade"}"#),
        Some(0.0)
    );
    assert!(m
        .get(r#"kraken_ledger_last_entry_timestamp_seconds{account="main",type="withdrawal"}"#)
        .is_some());
    // The unusable file is kept aside, and a good one written in its place.
    assert!(dir.path().join("ledger-main.json.corrupt").exists());
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["account"], "main");
    assert_eq!(saved["book"]["started"], true);
    // A directory that is not there is refused up front, naming the key.
    let config = self::config(
        dir.path(),
        &simulator,
        &main,
        "state_dir = \"/nonexistent/kraken\"",
        "",
    );
    let out = crate::helpers::exporter_command(&["--config.file", &config, "--check-config"], &[])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("state_dir = \"/nonexistent/kraken\" is not a directory"),
        "{stderr}"
    );
}

#[tokio::test]
async fn money_in_flight_is_exported_and_a_refused_withdraw_status_is_its_own_health() {
    let main = TestAccount::new("main", "KEY-funding");
    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    simulator.set_funding(
        main.api_key,
        vec![
            SimMovement::new("XXBT", "0.5", 1_000, "Pending"),
            SimMovement::new("XXBT", "0.25", 2_000, "Pending"),
            SimMovement::new("XXBT", "0.1", 500, "Settled"),
            SimMovement::new("ZUSD", "10", 100, "Success"),
            SimMovement::new("XETH", "1", 50, "Pending").with_prop("canceled"),
            SimMovement::new("XETH", "2", 60, "Failure"),
        ],
        vec![
            SimMovement::new("XETH", "2.0", 3_000, "Settled"),
            SimMovement::new("ZEUR", "100", 10, "Success"),
        ],
    );
    let (code, m, logs) = once(
        &simulator,
        &main,
        "funding = true\nwithdrawal_stuck_after = \"4h\"",
    )
    .await;
    assert_eq!(code, Some(0), "{logs}");
    let at = |name: &str, labels: &str| m.get(&format!("{name}{{account=\"main\"{labels}}}"));
    assert_eq!(
        at(
            "kraken_withdrawals_in_flight",
            r#",asset="XBT",status="pending""#
        ),
        Some(2.0)
    );
    assert_eq!(
        at(
            "kraken_withdrawals_in_flight_amount",
            r#",asset="XBT",status="pending""#
        ),
        Some(0.75)
    );
    assert_eq!(
        at(
            "kraken_withdrawals_in_flight",
            r#",asset="XBT",status="settled""#
        ),
        Some(1.0)
    );
    assert_eq!(
        at(
            "kraken_withdrawal_oldest_in_flight_timestamp_seconds",
            r#",asset="XBT""#
        ),
        Some(500.0)
    );
    // Final states leave: nothing of USD or ETH withdrawals.
    assert_eq!(
        m.count_for_account("kraken_withdrawals_in_flight", "main"),
        2
    );
    assert_eq!(
        at(
            "kraken_withdrawal_oldest_in_flight_timestamp_seconds",
            r#",asset="ETH""#
        ),
        None
    );
    assert_eq!(
        at(
            "kraken_deposits_in_flight_amount",
            r#",asset="ETH",status="settled""#
        ),
        Some(2.0)
    );
    assert_eq!(m.count_for_account("kraken_deposits_in_flight", "main"), 1);
    assert_eq!(
        at("kraken_withdrawal_stuck_after_seconds", ""),
        Some(14_400.0)
    );
    assert_eq!(
        at("kraken_deposit_unconfirmed_after_seconds", ""),
        Some(7_200.0)
    );
    assert!(logs.contains("withdrawal of 0.1 XBT settled"), "{logs}");

    // A key without Withdraw Funds: that endpoint is down with the advice not to grant it; the
    // deposits and the balances are not touched.
    simulator.deny(main.api_key, Direction::Withdrawal.path());
    let (_, m, logs) = once(&simulator, &main, "funding = true").await;
    assert_eq!(m.up("main"), 1.0);
    assert_eq!(at_endpoint(&m, "WithdrawStatus"), Some(0.0));
    assert_eq!(at_endpoint(&m, "DepositStatus"), Some(1.0));
    assert!(
        logs.contains("do not give a monitoring key that") && logs.contains("ledger = true"),
        "{logs}"
    );
    assert_eq!(
        m.get(r#"kraken_endpoint_info{endpoint="WithdrawStatus",permission="Withdraw Funds"}"#),
        Some(1.0)
    );
}

fn at_endpoint(m: &Samples, endpoint: &str) -> Option<f64> {
    m.get(&format!(
        r#"kraken_endpoint_up{{account="main",endpoint="{endpoint}"}}"#
    ))
}

/// The answers in `tests/fixtures/kraken/<folder>`, by file name.
fn recorded(folder: &str) -> Vec<(String, Vec<u8>)> {
    let dir = crate::helpers::repo_path(&format!("tests/fixtures/kraken/{folder}"));
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{folder}");
    files
}

/// A decimal string or number of a recorded answer, exactly.
fn exact(value: &serde_json::Value) -> Decimal {
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    text.parse().unwrap()
}

#[tokio::test]
async fn krakens_recorded_ledgers_are_counted_exactly_from_their_own_numbers() {
    let main = TestAccount::new("main", "KEY-ledger-golden");
    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    for (name, body) in recorded("ledgers") {
        simulator.set_recorded(
            main.api_key,
            kraken_exporter::kraken::ledgers::PATH,
            Some(body.clone()),
        );
        // A book that has seen the ledger empty: everything in the answer is new.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ledger-main.json"),
            r#"{"version":1,"account":"main","book":{"started":true}}"#,
        )
        .unwrap();
        let (code, m, stderr) = once_with_state(dir.path(), &simulator, &main).await;
        assert_eq!(code, Some(0), "{name}: {stderr}");
        // The expectation from the file's own entries.
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut entries: Vec<SimEntry> = answer["result"]["ledger"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(id, entry)| SimEntry {
                id: id.clone(),
                time: exact(&entry["time"]),
                kind: entry["type"].as_str().unwrap().to_string(),
                asset: entry["asset"].as_str().unwrap().to_string(),
                amount: exact(&entry["amount"]),
                fee: exact(&entry["fee"]),
            })
            .collect();
        entries.sort_by_key(|e| e.time);
        let sums = expected(&entries, 0);
        assert!(!sums.is_empty(), "{name}");
        assert_eq!(
            mismatches(&m, "main", &sums),
            Vec::<String>::new(),
            "{name}"
        );
        let newest = entries.iter().map(|e| e.time).max().unwrap();
        assert_eq!(
            m.get(r#"kraken_ledger_last_entry_timestamp_seconds{account="main",type="trade"}"#),
            nearest(&newest),
            "{name}"
        );
    }
}

#[tokio::test]
async fn krakens_recorded_withdrawals_and_deposits_give_the_money_in_flight_of_their_own_items() {
    let main = TestAccount::new("main", "KEY-funding-golden");
    let simulator = Simulator::start().await.unwrap();
    simulator.add_account(main.api_key, &main.secret, demo_portfolio());
    for (direction, folder, family) in [
        (
            Direction::Withdrawal,
            "withdraw_status",
            "kraken_withdrawals_in_flight",
        ),
        (
            Direction::Deposit,
            "deposit_status",
            "kraken_deposits_in_flight",
        ),
    ] {
        for (name, body) in recorded(folder) {
            simulator.set_recorded(main.api_key, direction.path(), Some(body.clone()));
            let (_, m, logs) = once(&simulator, &main, "funding = true").await;
            assert_eq!(
                m.get(&format!(
                    r#"kraken_endpoint_up{{account="main",endpoint="{}"}}"#,
                    direction.method()
                )),
                Some(1.0),
                "{name}: {logs}"
            );
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let mut flying: BTreeMap<(String, String), (f64, Decimal)> = BTreeMap::new();
            for item in answer["result"].as_array().unwrap() {
                let status = item["status"].as_str().unwrap();
                let prop = item.get("status-prop").and_then(|p| p.as_str());
                if matches!(status, "Success" | "Failure") || prop == Some("canceled") {
                    continue;
                }
                let asset =
                    kraken_exporter::kraken::assets::classify(item["asset"].as_str().unwrap())
                        .asset;
                let sum = flying.entry((asset, status.to_lowercase())).or_default();
                sum.0 += 1.0;
                sum.1 += exact(&item["amount"]);
            }
            assert_eq!(
                m.count_for_account(family, "main"),
                flying.len(),
                "{name}: {}",
                m.text
            );
            for ((asset, status), (count, amount)) in &flying {
                let labels = format!(r#"{{account="main",asset="{asset}",status="{status}"}}"#);
                assert_eq!(m.get(&format!("{family}{labels}")), Some(*count), "{name}");
                assert_eq!(
                    m.get(&format!("{family}_amount{labels}")),
                    nearest(amount),
                    "{name}"
                );
            }
        }
        simulator.set_recorded(main.api_key, direction.path(), None);
    }
}
