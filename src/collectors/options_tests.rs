//! The endpoints' options read and checked through the one loader ([`super::load_settings`]): each
//! endpoint's keys, their values and the errors that name them, as an operator writes them.

use std::io::Write;

use rust_decimal::Decimal;

use super::trade_balance::{margin_options, MarginOptions};
use super::{load_settings, polled_by};
use crate::config::{ConfigError, Settings};

const SECRET: &str =
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

const ONE_ACCOUNT: &str =
    "[[accounts]]\nname = \"main\"\napi_key = \"KEY-abcd\"\napi_secret_file = \"$DIR/secret\"\n";

const FUTURES_KEY: &str = "futures_api_key = \"F\"\nfutures_api_secret_file = \"$DIR/secret\"\n";

fn load(toml: &str) -> Result<Settings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let mut secret = std::fs::File::create(dir.path().join("secret")).unwrap();
    writeln!(secret, "{SECRET}").unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        toml.replace("$DIR", &dir.path().display().to_string()),
    )
    .unwrap();
    load_settings(Some(&file), Default::default())
}

fn refused(toml: &str) -> String {
    match load(toml) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(ConfigError(message)) => message,
    }
}

#[test]
fn margin_and_earn_are_opt_in_per_account_with_their_options() {
    let plain = load(ONE_ACCOUNT).unwrap();
    let methods: Vec<&str> = polled_by(&plain.accounts[0]).map(|e| e.method).collect();
    assert_eq!(methods, ["BalanceEx", "GetApiKeyInfo"]);
    let settings = load(&format!(
        "{ONE_ACCOUNT}margin = true\nmargin_asset = \"ZEUR\"\nmin_margin_level = \"2.5\"\nearn = true\n"
    ))
    .unwrap();
    let account = &settings.accounts[0];
    assert_eq!(
        margin_options(account, "").unwrap(),
        Some(MarginOptions {
            asset: "EUR".into(),
            min_level: Some(Decimal::new(25, 1)),
        })
    );
    let methods: Vec<&str> = polled_by(account).map(|e| e.method).collect();
    assert_eq!(
        methods,
        [
            "BalanceEx",
            "TradeBalance",
            "Earn/Allocations",
            "GetApiKeyInfo"
        ]
    );
    let default_asset = load(&format!("{ONE_ACCOUNT}margin = true\n")).unwrap();
    assert_eq!(
        margin_options(&default_asset.accounts[0], "")
            .unwrap()
            .unwrap()
            .asset,
        "USD"
    );
}

#[test]
fn each_endpoints_mistakes_are_refused_naming_the_account_and_the_key() {
    let cases: &[(&str, &[&str])] = &[
        ("margin_asset = \"USD\"", &["margin_asset", "margin = true"]),
        (
            "min_margin_level = \"2\"",
            &["min_margin_level", "margin = true"],
        ),
        (
            "margin = true\nmin_margin_level = \"200\"",
            &["min_margin_level", "ratio", "2.0"],
        ),
        (
            "margin = true\nmin_margin_level = \"0\"",
            &["min_margin_level", "above 0"],
        ),
        (
            "margin = true\nmin_margin_level = \"high\"",
            &["min_margin_level", "high"],
        ),
        ("margin = true\nmargin_asset = \" \"", &["margin_asset"]),
        (
            "margin = \"maybe\"",
            &["margin = \"maybe\" must be true or false"],
        ),
        ("earn = 1", &["earn = 1 must be true or false"]),
        (
            "key_info = \"no\"",
            &["key_info = \"no\" must be true or false"],
        ),
        (
            "futures_min_margin_ratio = \"2\"",
            &["needs a futures key pair"],
        ),
        (
            "futures_min_margin_ratio = \"1\"\nWITH_KEY",
            &["must be above 1"],
        ),
        (
            "futures_min_margin_ratio = \"lots\"\nWITH_KEY",
            &["not a decimal"],
        ),
        ("margn = true", &["margn", "unknown key"]),
    ];
    for (extra, words) in cases {
        let extra = extra.replace("WITH_KEY", FUTURES_KEY);
        let message = refused(&format!("{ONE_ACCOUNT}{extra}\n"));
        assert!(
            message.starts_with("account \"main\": ") || message.contains("unknown key"),
            "{message}"
        );
        assert!(
            !message.contains(SECRET) && !message.contains("KEY-abcd"),
            "{message}"
        );
        for word in *words {
            assert!(
                message.contains(word),
                "{extra}: {message:?} should say {word:?}"
            );
        }
    }
    for (interval, word) in [
        ("\"30s\"", "below the minimum of 1m"),
        ("\"2d\"", "longer than the longest"),
        ("\"soon\"", "not a duration"),
    ] {
        let message = refused(&format!("key_info_interval = {interval}\n{ONE_ACCOUNT}"));
        assert!(
            message.contains("key_info_interval") && message.contains(word),
            "{message}"
        );
    }
}

#[test]
fn the_futures_threshold_and_the_key_info_options_reach_their_endpoints() {
    let settings = load(&format!(
        "key_info_interval = \"5m\"\n{ONE_ACCOUNT}{FUTURES_KEY}futures_min_margin_ratio = \"2.5\"\n"
    ))
    .unwrap();
    let account = &settings.accounts[0];
    assert_eq!(
        super::futures_accounts::min_margin_ratio(account, "").unwrap(),
        Some(Decimal::new(25, 1))
    );
    assert_eq!(
        super::api_key::key_info_interval(&settings),
        std::time::Duration::from_secs(300)
    );
    let summary = super::account_summary(account);
    assert!(summary.contains("futures margin ratio >= 2.5"), "{summary}");
    let off = load(&format!("{ONE_ACCOUNT}{FUTURES_KEY}key_info = false\n")).unwrap();
    let methods: Vec<&str> = polled_by(&off.accounts[0]).map(|e| e.method).collect();
    assert_eq!(methods, ["BalanceEx", "futures/accounts"]);
}
