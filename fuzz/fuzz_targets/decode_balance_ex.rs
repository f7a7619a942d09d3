//! Fuzzes the BalanceEx response decoder and the asset-key mapper with arbitrary bytes:
//! `cargo +nightly fuzz run decode_balance_ex` (see the README).
#![no_main]

use kraken_exporter::kraken::assets::label_all;
use kraken_exporter::kraken::balance_ex::decode_balance_ex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(balances) = decode_balance_ex(data) {
        let labelled = label_all(balances.assets.iter().map(|a| a.key.as_str()));
        assert_eq!(labelled.labels.len(), balances.assets.len());
        for asset in &balances.assets {
            let _ = asset.available();
        }
    }
});
