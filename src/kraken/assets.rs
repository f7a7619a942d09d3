//! Raw `BalanceEx` asset keys to the `asset` and `family` labels.
//!
//! The family comes from the suffix after the last dot (`DOT.S` -> staked). The asset is the key without
//! that suffix, with Kraken's legacy X/Z-prefixed codes replaced by their modern names through an explicit
//! table: no rule strips a leading X, because `XTZ` (Tezos) and `XCN` are real codes.
//!
//! A key with nothing before or after its last dot (`.S`, `USD.`) is kept whole as a spot asset, so every
//! key maps to exactly one series.

use std::collections::HashMap;

/// The earn/staking family of a balance, from the asset key's suffix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AssetFamily {
    /// No suffix: the spot balance.
    Spot,
    /// `.S`: bonded or locked staking.
    Staked,
    /// `.M`: opt-in rewards.
    OptInRewards,
    /// `.B`: yield-bearing balance.
    YieldBearing,
    /// `.F`: Kraken Rewards auto-earn.
    AutoEarn,
    /// `.T`: tokenized assets.
    Tokenized,
    /// `.P`: parachain.
    Parachain,
    /// `KFEE`: fee credits. They pay trading fees only: exported as a balance, never spendable and
    /// never valued.
    FeeCredits,
    /// Any other suffix, lowercased (`.HOLD` -> `hold`); never dropped.
    Other(String),
}

impl AssetFamily {
    /// The family for a suffix (the text after the last dot, without the dot).
    pub fn from_suffix(suffix: &str) -> Self {
        match suffix {
            "S" => Self::Staked,
            "M" => Self::OptInRewards,
            "B" => Self::YieldBearing,
            "F" => Self::AutoEarn,
            "T" => Self::Tokenized,
            "P" => Self::Parachain,
            other => Self::Other(other.to_lowercase()),
        }
    }

    /// Parses a label value back into a family (`"spot"` -> `Spot`); used for configured thresholds.
    pub fn from_label(label: &str) -> Self {
        match label {
            "spot" => Self::Spot,
            "staked" => Self::Staked,
            "opt_in_rewards" => Self::OptInRewards,
            "yield_bearing" => Self::YieldBearing,
            "auto_earn" => Self::AutoEarn,
            "tokenized" => Self::Tokenized,
            "parachain" => Self::Parachain,
            "fee_credits" => Self::FeeCredits,
            other => Self::Other(other.to_string()),
        }
    }

    /// The `family` label value.
    pub fn label(&self) -> &str {
        match self {
            Self::Spot => "spot",
            Self::Staked => "staked",
            Self::OptInRewards => "opt_in_rewards",
            Self::YieldBearing => "yield_bearing",
            Self::AutoEarn => "auto_earn",
            Self::Tokenized => "tokenized",
            Self::Parachain => "parachain",
            Self::FeeCredits => "fee_credits",
            Self::Other(suffix) => suffix,
        }
    }

    /// Whether a row of this family is money with a price: everything but fee credits.
    pub fn is_valued(&self) -> bool {
        *self != Self::FeeCredits
    }
}

/// Kraken's key for fee credits (altname `FEE`).
pub const FEE_CREDITS: &str = "KFEE";

/// Legacy X/Z-prefixed codes and their modern names. Codes not listed are kept as they are.
const LEGACY_CODES: &[(&str, &str)] = &[
    ("XXBT", "XBT"),
    ("XETH", "ETH"),
    ("XXDG", "XDG"),
    ("XLTC", "LTC"),
    ("XXRP", "XRP"),
    ("XXLM", "XLM"),
    ("XXMR", "XMR"),
    ("XZEC", "ZEC"),
    ("XETC", "ETC"),
    ("XREP", "REP"),
    ("XMLN", "MLN"),
    ("ZUSD", "USD"),
    ("ZEUR", "EUR"),
    ("ZGBP", "GBP"),
    ("ZCAD", "CAD"),
    ("ZJPY", "JPY"),
    ("ZAUD", "AUD"),
    ("ZCHF", "CHF"),
    // Kraken's altname for fee credits is FEE; the table pins the familiar key so the label never flips.
    ("KFEE", "KFEE"),
];

/// The code Kraken's requests expect for a modern name (`USD` -> `ZUSD`, `XBT` -> `XXBT`); names outside
/// the legacy table unchanged (`USDT` -> `USDT`).
pub fn kraken_code(modern: &str) -> &str {
    LEGACY_CODES
        .iter()
        .find(|(legacy, name)| *name == modern && *legacy != modern)
        .map_or(modern, |(legacy, _)| legacy)
}

/// The modern name of an asset code (`XXBT` -> `XBT`); unknown codes unchanged (`XTZ` -> `XTZ`).
pub fn modern_code(code: &str) -> &str {
    LEGACY_CODES
        .iter()
        .find(|(legacy, _)| *legacy == code)
        .map_or(code, |(_, modern)| modern)
}

/// Names people write for assets whose Kraken code differs (`BTC` is Kraken's `XBT`, `DOGE` its `XDG`).
const COMMON_NAMES: &[(&str, &str)] = &[("BTC", "XBT"), ("DOGE", "XDG")];

/// An asset as an operator writes it (any case, a legacy code or a common name: `btc`, `XXBT`, `BTC`)
/// to the `asset` label value Kraken's balances carry (`XBT`). The one reading of asset codes in the
/// configuration: thresholds, quote currencies and the margin currency.
pub fn asset_label_of(written: &str) -> String {
    let upper = written.trim().to_ascii_uppercase();
    let modern = modern_code(&upper);
    COMMON_NAMES
        .iter()
        .find(|(common, _)| *common == modern)
        .map_or(modern, |(_, kraken)| kraken)
        .to_string()
}

/// The `asset` label values of every asset Kraken lists (`GET /0/public/Assets`: raw code ->
/// altname): each raw code as the balances label it (the legacy table first) and each altname.
pub fn listed_labels<'a>(
    assets: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> std::collections::BTreeSet<String> {
    let mut listed = std::collections::BTreeSet::new();
    for (code, altname) in assets {
        listed.insert(modern_code(code).to_string());
        if !altname.is_empty() {
            listed.insert(altname.to_string());
        }
    }
    listed
}

/// Up to `count` codes of `listed` nearest to `code` (fewest single-character edits, then
/// alphabetical), for a message that suggests what was meant.
pub fn nearest_codes<'a>(
    code: &str,
    listed: &'a std::collections::BTreeSet<String>,
    count: usize,
) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> = listed
        .iter()
        .map(|candidate| (edit_distance(code, candidate), candidate.as_str()))
        .collect();
    scored.sort();
    scored.into_iter().take(count).map(|(_, c)| c).collect()
}

/// Edits between two short codes: insertions, deletions, substitutions and swaps of two neighbours
/// (`XTB` is one edit from `XBT`), the optimal string alignment distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            table[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (table[(i - 1) * width + j] + 1)
                    .min(table[i * width + j - 1] + 1)
                    .min(table[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(table[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    table[a.len() * width + b.len()]
}

/// Asset names learned from Kraken's `Assets` endpoint (altnames), on top of the legacy-code table.
///
/// For the codes of the table, the table always wins, so a label never changes when the endpoint comes
/// and goes (an altname that disagrees is logged once). Other codes take their altname once learned;
/// learned names are kept for the life of the process, even when later refreshes fail.
#[derive(Debug, Default)]
pub struct AssetNames {
    learned: std::sync::RwLock<HashMap<String, String>>,
}

impl AssetNames {
    /// The modern name of a raw code.
    pub fn modern(&self, code: &str) -> String {
        if LEGACY_CODES.iter().any(|(legacy, _)| *legacy == code) {
            return modern_code(code).to_string();
        }
        crate::sync::read(&self.learned)
            .get(code)
            .cloned()
            .unwrap_or_else(|| code.to_string())
    }

    /// Learns raw code -> altname pairs (from `GET /0/public/Assets`).
    pub fn learn<'a>(&self, altnames: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut learned = crate::sync::write(&self.learned);
        for (code, altname) in altnames {
            if altname.is_empty() || altname == code {
                continue;
            }
            if let Some((_, table)) = LEGACY_CODES.iter().find(|(legacy, _)| *legacy == code) {
                // Pinned codes (KFEE) are known to differ; only real renames are worth a warning.
                if *table != altname && *table != code && !learned.contains_key(code) {
                    tracing::warn!(code, altname, table = *table, "Kraken's altname differs from the built-in table; keeping the table's name so labels stay stable");
                }
            }
            learned.insert(code.to_string(), altname.to_string());
        }
    }

    /// Maps one raw key (`XXBT.M`) to its labels with these names.
    pub fn classify(&self, raw_key: &str) -> AssetLabels {
        match raw_key.rsplit_once('.') {
            Some((base, suffix)) if !base.is_empty() && !suffix.is_empty() => AssetLabels {
                asset: self.modern(base),
                family: AssetFamily::from_suffix(suffix),
            },
            _ if raw_key == FEE_CREDITS => AssetLabels {
                asset: self.modern(raw_key),
                family: AssetFamily::FeeCredits,
            },
            _ => AssetLabels {
                asset: self.modern(raw_key),
                family: AssetFamily::Spot,
            },
        }
    }
}

/// The label pair of one balance series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetLabels {
    pub asset: String,
    pub family: AssetFamily,
}

/// Maps one raw key on its own, without regard to collisions with other keys.
pub fn classify(raw_key: &str) -> AssetLabels {
    AssetNames::default().classify(raw_key)
}

/// Maps every raw key of one response to its labels, keeping series distinct.
///
/// When two raw keys would map to the same `(asset, family)` (say `XXBT` and `XBT`), both keep their raw
/// key as `asset`; the colliding raw keys are returned in `collisions` so the caller can warn once.
pub fn label_all<'a, I>(raw_keys: I) -> LabelledKeys
where
    I: IntoIterator<Item = &'a str>,
{
    label_all_with(&AssetNames::default(), raw_keys)
}

/// [`label_all`] with names learned from Kraken.
pub fn label_all_with<'a, I>(names: &AssetNames, raw_keys: I) -> LabelledKeys
where
    I: IntoIterator<Item = &'a str>,
{
    let classified: Vec<(&str, AssetLabels)> = raw_keys
        .into_iter()
        .map(|key| (key, names.classify(key)))
        .collect();
    // Keys whose mapped labels clash fall back to their raw key, which is unique. A raw-key label can
    // in turn clash with another key's mapped label (a learned altname equal to a raw key), so repeat
    // until every label is distinct; each round moves at least one key to its raw label.
    let mut raw = vec![false; classified.len()];
    loop {
        let mut counts: HashMap<(&str, &AssetFamily), usize> =
            HashMap::with_capacity(classified.len());
        for ((key, mapped), raw) in classified.iter().zip(&raw) {
            let asset = if *raw { key } else { mapped.asset.as_str() };
            *counts.entry((asset, &mapped.family)).or_default() += 1;
        }
        let mut changed = false;
        for ((_, mapped), raw) in classified.iter().zip(raw.iter_mut()) {
            if !*raw && counts[&(mapped.asset.as_str(), &mapped.family)] > 1 {
                *raw = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut labels = Vec::with_capacity(classified.len());
    let mut collisions = Vec::new();
    for ((key, mapped), raw) in classified.into_iter().zip(raw) {
        if raw {
            collisions.push(key.to_string());
            labels.push(AssetLabels {
                asset: key.to_string(),
                family: mapped.family,
            });
        } else {
            labels.push(mapped);
        }
    }
    LabelledKeys { labels, collisions }
}

/// The result of [`label_all`].
#[derive(Debug, Default)]
pub struct LabelledKeys {
    /// The labels of each raw key, in the order the keys were given.
    pub labels: Vec<AssetLabels>,
    /// Raw keys that kept their raw name because another key mapped to the same labels.
    pub collisions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn labels(raw: &str) -> (String, String) {
        let labels = classify(raw);
        (labels.asset, labels.family.label().to_string())
    }

    fn pair(asset: &str, family: &str) -> (String, String) {
        (asset.to_string(), family.to_string())
    }

    #[test]
    fn operators_spellings_of_an_asset_read_as_krakens_label() {
        for (written, label) in [
            ("btc", "XBT"),
            ("BTC", "XBT"),
            ("xbt", "XBT"),
            ("XXBT", "XBT"),
            (" xxbt ", "XBT"),
            ("DOGE", "XDG"),
            ("doge", "XDG"),
            ("XXDG", "XDG"),
            ("zusd", "USD"),
            ("usdt", "USDT"),
            ("XTZ", "XTZ"),
        ] {
            assert_eq!(asset_label_of(written), label, "{written}");
        }
    }

    #[test]
    fn nearest_codes_suggest_what_was_meant() {
        let listed = listed_labels([
            ("XXBT", "XBT"),
            ("XETH", "ETH"),
            ("ZUSD", "USD"),
            ("USDT", "USDT"),
            ("DOT", "DOT"),
        ]);
        assert!(listed.contains("XBT") && listed.contains("USD") && !listed.contains("ZUSD"));
        assert_eq!(nearest_codes("XTB", &listed, 1), vec!["XBT"]);
        assert_eq!(nearest_codes("USDD", &listed, 2), vec!["USD", "USDT"]);
        assert_eq!(edit_distance("", "ABC"), 3);
        assert_eq!(edit_distance("ETH", "ETH"), 0);
        assert_eq!(edit_distance("XTB", "XBT"), 1);
        assert_eq!(edit_distance("DOGE", "XDG"), 3);
    }

    #[test]
    fn every_documented_suffix_maps_to_its_family() {
        assert_eq!(labels("DOT"), pair("DOT", "spot"));
        assert_eq!(labels("DOT.S"), pair("DOT", "staked"));
        assert_eq!(labels("XBT.M"), pair("XBT", "opt_in_rewards"));
        assert_eq!(labels("ETH.B"), pair("ETH", "yield_bearing"));
        assert_eq!(labels("USDT.F"), pair("USDT", "auto_earn"));
        assert_eq!(labels("AAPLx.T"), pair("AAPLx", "tokenized"));
        assert_eq!(labels("KSM.P"), pair("KSM", "parachain"));
    }

    #[test]
    fn unknown_suffixes_become_their_own_lowercased_family() {
        assert_eq!(labels("USD.HOLD"), pair("USD", "hold"));
        assert_eq!(labels("SOL.Xyz"), pair("SOL", "xyz"));
    }

    #[test]
    fn legacy_codes_map_through_the_table() {
        assert_eq!(labels("XXBT"), pair("XBT", "spot"));
        assert_eq!(labels("XETH"), pair("ETH", "spot"));
        assert_eq!(labels("XXDG"), pair("XDG", "spot"));
        assert_eq!(labels("ZUSD"), pair("USD", "spot"));
        assert_eq!(labels("ZEUR"), pair("EUR", "spot"));
        assert_eq!(labels("ZJPY"), pair("JPY", "spot"));
        assert_eq!(labels("XXRP"), pair("XRP", "spot"));
    }

    #[test]
    fn modern_codes_that_start_with_x_or_z_are_kept() {
        assert_eq!(labels("XTZ"), pair("XTZ", "spot"));
        assert_eq!(labels("XTZ.S"), pair("XTZ", "staked"));
        assert_eq!(labels("ZRX"), pair("ZRX", "spot"));
        assert_eq!(labels("KFEE"), pair("KFEE", "fee_credits"));
        assert_eq!(labels("ETH2.S"), pair("ETH2", "staked"));
    }

    #[test]
    fn keys_without_a_base_or_suffix_stay_whole() {
        assert_eq!(labels(".S"), pair(".S", "spot"));
        assert_eq!(labels("USD."), pair("USD.", "spot"));
        assert_eq!(labels(""), pair("", "spot"));
    }

    #[test]
    fn colliding_keys_keep_their_raw_names() {
        let keys = ["XXBT", "XBT", "XBT.M", "ZUSD"];
        let result = label_all(keys);
        let get = |k: &str| {
            let l = &result.labels[keys.iter().position(|key| *key == k).unwrap()];
            (l.asset.clone(), l.family.label().to_string())
        };
        assert_eq!(get("XXBT"), pair("XXBT", "spot"));
        assert_eq!(get("XBT"), pair("XBT", "spot"));
        assert_eq!(get("XBT.M"), pair("XBT", "opt_in_rewards"));
        assert_eq!(get("ZUSD"), pair("USD", "spot"));
        let mut collisions = result.collisions.clone();
        collisions.sort();
        assert_eq!(collisions, vec!["XBT".to_string(), "XXBT".to_string()]);
    }

    #[test]
    fn a_raw_key_fallback_never_clashes_with_a_learned_name() {
        // XXBT and XBT collide and fall back to their raw keys; a code Kraken calls "XXBT" would
        // then take the series of the raw XXBT: it falls back to its raw key too.
        let names = AssetNames::default();
        names.learn([("ODD", "XXBT")]);
        let result = label_all_with(&names, ["XBT", "XXBT", "ODD", "DOT"]);
        let distinct: HashSet<_> = result.labels.iter().collect();
        assert_eq!(distinct.len(), 4, "{:?}", result.labels);
        assert_eq!(result.labels[2].asset, "ODD");
        assert_eq!(result.labels[3].asset, "DOT");
    }

    #[test]
    fn every_key_maps_to_a_distinct_series() {
        let keys = [
            "XXBT", "XBT", "XBT.M", "XXBT.M", "ZUSD", "USD", "USD.HOLD", "USD.hold", "XTZ", ".S",
        ];
        let result = label_all(keys);
        let distinct: HashSet<_> = result.labels.iter().collect();
        assert_eq!(distinct.len(), keys.len());
    }

    #[test]
    fn learned_altnames_name_new_codes_but_never_change_the_table_codes() {
        let keys = ["XXBT", "ZUSD", "XETH.S", "XREPV2", "XTZ"];
        let names = AssetNames::default();
        let before: Vec<AssetLabels> = keys.iter().map(|k| names.classify(k)).collect();
        names.learn([
            ("XXBT", "XBT"),
            ("ZUSD", "ZUSD"),
            ("XETH", "ETH"),
            ("XREPV2", "REPV2"),
            ("XTZ", "XTZ"),
        ]);
        let after: Vec<AssetLabels> = keys.iter().map(|k| names.classify(k)).collect();
        // Table codes: identical before and after, even where the altname disagrees (ZUSD).
        assert_eq!(&before[..3], &after[..3]);
        assert_eq!(after[1].asset, "USD");
        // A code outside the table takes its altname.
        assert_eq!(before[3].asset, "XREPV2");
        assert_eq!(after[3].asset, "REPV2");
        assert_eq!(after[4].asset, "XTZ");
        // A later failed refresh learns nothing and forgets nothing.
        names.learn(std::iter::empty());
        assert_eq!(names.classify("XREPV2").asset, "REPV2");
    }

    #[test]
    fn family_labels_round_trip() {
        for suffix in ["S", "M", "B", "F", "T", "P", "HOLD"] {
            let family = AssetFamily::from_suffix(suffix);
            assert_eq!(AssetFamily::from_label(family.label()), family);
        }
        assert_eq!(AssetFamily::from_label("spot"), AssetFamily::Spot);
    }
}
