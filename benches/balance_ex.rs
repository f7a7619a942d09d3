//! Cost of turning a 1,000-asset `BalanceEx` answer into published metrics:
//! `cargo bench --bench balance_ex`. Results and machine in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kraken_exporter::collectors::BalanceFamilies;
use kraken_exporter::kraken::assets::label_all;
use kraken_exporter::kraken::balance_ex::decode_balance_ex;
use kraken_exporter::metrics::Metrics;
use kraken_exporter::simulator::synthetic_balance_ex;

/// Decode, label, replace the account's series and publish: what a successful poll does.
fn apply(metrics: &Metrics, families: &BalanceFamilies, body: &[u8]) {
    let balances = decode_balance_ex(body).expect("the benchmark body is valid");
    let labelled = label_all(balances.assets.iter().map(|a| a.key.as_str()));
    metrics.update(|m| {
        families.replace_balances(m, "account0", labelled.labels.iter().zip(&balances.assets))
    });
}

fn benchmarks(c: &mut Criterion) {
    let body = synthetic_balance_ex(1000);
    c.bench_function("decode 1000-asset BalanceEx", |b| {
        b.iter(|| decode_balance_ex(black_box(body.as_bytes())).expect("valid"))
    });
    let metrics = Metrics::new(&["account0"]);
    let families = BalanceFamilies::register(&metrics);
    c.bench_function("decode, apply and publish 1000 assets", |b| {
        b.iter(|| apply(&metrics, &families, black_box(body.as_bytes())))
    });
    c.bench_function("scrape body of 1000 assets", |b| {
        b.iter(|| black_box(metrics.scrape()))
    });
}

criterion_group!(benches, benchmarks);
criterion_main!(benches);
