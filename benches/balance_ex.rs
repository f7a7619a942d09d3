//! Cost of turning a 1,000-asset `BalanceEx` answer into published metrics:
//! `cargo bench --bench balance_ex`. Results and machine in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kraken_exporter::kraken::assets::label_all;
use kraken_exporter::kraken::balance_ex::decode_balance_ex;
use kraken_exporter::metrics::Metrics;

/// A Kraken-shaped answer with `count` assets over every family, amounts as 10-decimal strings.
fn balance_ex_body(count: usize) -> String {
    const SUFFIXES: [&str; 8] = ["", ".S", ".M", ".B", ".F", ".T", ".P", ".HOLD"];
    let assets: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#""AST{}{}":{{"balance":"{}.{:010}","hold_trade":"{}.{:010}"{}}}"#,
                i / SUFFIXES.len(),
                SUFFIXES[i % SUFFIXES.len()],
                (i * 7919) % 1_000_000,
                (i * 104_729) % 10_000_000_000,
                (i * 31) % 1_000,
                (i * 7) % 10_000_000_000,
                if i % 10 == 0 {
                    r#","credit":"500.0000000000","credit_used":"120.5000000000""#
                } else {
                    ""
                }
            )
        })
        .collect();
    format!(r#"{{"error":[],"result":{{{}}}}}"#, assets.join(","))
}

/// Decode, label, replace the account's series and publish: what a successful poll does.
fn apply(metrics: &Metrics, body: &[u8]) {
    let balances = decode_balance_ex(body).expect("the benchmark body is valid");
    let labelled = label_all(balances.assets.iter().map(|a| a.key.as_str()));
    metrics
        .update(|m| m.replace_balances("account0", labelled.labels.iter().zip(&balances.assets)));
}

fn benchmarks(c: &mut Criterion) {
    let body = balance_ex_body(1000);
    c.bench_function("decode 1000-asset BalanceEx", |b| {
        b.iter(|| decode_balance_ex(black_box(body.as_bytes())).expect("valid"))
    });
    let metrics = Metrics::new(&["account0"]);
    c.bench_function("decode, apply and publish 1000 assets", |b| {
        b.iter(|| apply(&metrics, black_box(body.as_bytes())))
    });
    c.bench_function("scrape body of 1000 assets", |b| {
        b.iter(|| black_box(metrics.scrape()))
    });
}

criterion_group!(benches, benchmarks);
criterion_main!(benches);
