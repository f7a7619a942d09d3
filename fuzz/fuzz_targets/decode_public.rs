//! Fuzzes the decoders of Kraken's public `Assets`, `AssetPairs` and `Ticker` answers.
#![no_main]

use kraken_exporter::kraken::public::{decode_asset_pairs, decode_assets, decode_ticker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_assets(data);
    let _ = decode_asset_pairs(data);
    if let Ok(prices) = decode_ticker(data) {
        // Only usable prices are kept.
        assert!(prices
            .values()
            .all(|price| price.is_sign_positive() && !price.is_zero()));
    }
});
