//! Fuzzes the BalanceEx response decoder, the asset-key mapper and the spendable sums with arbitrary
//! bytes. `.ci/run` runs every target for a bounded time (see docs/development.md, *Fuzzing*).
#![no_main]

use kraken_exporter::kraken::assets::{label_all_with, AssetNames};
use kraken_exporter::kraken::balance_ex::decode_balance_ex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(balances) = decode_balance_ex(data) {
        let names = AssetNames::default();
        let labelled = label_all_with(&names, balances.assets.iter().map(|a| a.key.as_str()));
        assert_eq!(labelled.labels.len(), balances.assets.len());
        for asset in &balances.assets {
            let _ = asset.available();
        }
        // Decoded rows are in range; only their sums may leave it, as an error.
        let _ = kraken_exporter::spendable::spendable_by_asset(&names, &balances.assets, &labelled);
    }
});
