//! Fuzzes asset-key labelling: any set of raw keys maps to distinct (asset, family) series.
#![no_main]

use std::collections::HashSet;

use kraken_exporter::kraken::assets::{label_all_with, AssetNames};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut keys: Vec<&str> = text.split('\n').collect();
    keys.sort_unstable();
    keys.dedup();
    let names = AssetNames::default();
    // Kraken's Assets endpoint can teach any name: let the input teach some.
    names.learn(keys.iter().filter_map(|k| k.split_once('=')));
    let labelled = label_all_with(&names, keys.iter().copied());
    assert_eq!(labelled.labels.len(), keys.len());
    let distinct: HashSet<_> = labelled.labels.iter().collect();
    assert_eq!(
        distinct.len(),
        keys.len(),
        "two keys share a series: {keys:?}"
    );
});
