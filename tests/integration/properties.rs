//! Property tests of the hostile-input surface: the response decoder and the asset-key mapper.

use std::collections::HashSet;
use std::str::FromStr;

use kraken_exporter::kraken::assets::label_all;
use kraken_exporter::kraken::balance_ex::decode_balance_ex;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Decimals as Kraken sends them: up to 10 decimal places, up to 18 integer digits.
fn kraken_decimal() -> impl Strategy<Value = Decimal> {
    (any::<i64>(), 0u32..=10).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_balance_ex(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics_the_decoder(value in json_value(), result in json_value()) {
        let _ = decode_balance_ex(value.to_string().as_bytes());
        let envelope = serde_json::json!({"error": [], "result": result});
        let _ = decode_balance_ex(envelope.to_string().as_bytes());
        let envelope = serde_json::json!({"error": [], "result": {"XXBT": result}});
        let _ = decode_balance_ex(envelope.to_string().as_bytes());
    }

    #[test]
    fn decimal_values_round_trip_exactly_as_strings_and_numbers(
        balance in kraken_decimal(),
        hold in kraken_decimal(),
        credit in kraken_decimal(),
    ) {
        let as_strings = format!(
            r#"{{"error":[],"result":{{"USDT":{{"balance":"{balance}","hold_trade":"{hold}","credit":"{credit}"}}}}}}"#
        );
        let as_numbers = format!(
            r#"{{"error":[],"result":{{"USDT":{{"balance":{balance},"hold_trade":{hold},"credit":{credit}}}}}}}"#
        );
        for body in [as_strings, as_numbers] {
            let decoded = decode_balance_ex(body.as_bytes()).unwrap();
            let asset = &decoded.assets[0];
            prop_assert_eq!(asset.balance, balance);
            prop_assert_eq!(asset.balance.to_string(), balance.to_string());
            prop_assert_eq!(asset.hold_trade, hold);
            prop_assert_eq!(asset.credit, credit);
            prop_assert_eq!(asset.available(), balance + credit - hold);
        }
    }

    #[test]
    fn every_asset_key_maps_to_exactly_one_distinct_series(
        keys in prop::collection::hash_set(
            prop_oneof![
                "(X|Z)?(XBT|ETH|USD|EUR|XDG|TZ|DOT)(\\.(S|M|B|F|T|P|HOLD|hold|s|x))?",
                "[A-Za-z0-9.]{0,8}",
            ],
            0..24,
        )
    ) {
        let labelled = label_all(keys.iter().map(String::as_str));
        prop_assert_eq!(labelled.labels.len(), keys.len());
        let series: HashSet<_> = labelled.labels.iter().collect();
        prop_assert_eq!(series.len(), keys.len(), "two keys share a series: {:?}", labelled.labels);
    }
}

#[test]
fn decimal_strategy_covers_the_extremes() {
    // The decoder must take i64::MAX with 10 decimal places, the largest value the strategy makes.
    let max = Decimal::new(i64::MAX, 10).to_string();
    let body = format!(r#"{{"error":[],"result":{{"X":{{"balance":"{max}","hold_trade":"0"}}}}}}"#);
    let decoded = decode_balance_ex(body.as_bytes()).unwrap();
    assert_eq!(decoded.assets[0].balance, Decimal::from_str(&max).unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn gauge_values_are_the_nearest_f64_to_the_exact_decimal(
        mantissa in any::<i64>(),
        scale in 0u32..=28,
    ) {
        let value = Decimal::new(mantissa, scale);
        let nearest: f64 = value.to_string().parse().unwrap();
        prop_assert_eq!(kraken_exporter::metrics::to_f64(value), nearest);
    }
}
