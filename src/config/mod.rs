//! Typed settings: loaded from a TOML file and `KRAKEN_EXPORTER_*` environment variables, validated
//! once, then trusted.
//!
//! Every problem is reported as one [`ConfigError`] line that names the key or file and says what to do;
//! no message ever contains a secret. Secrets are held in `secrecy` types from the moment they are read.
//!
//! Sources, later ones winning: the `--config` file, then `KRAKEN_EXPORTER_<KEY>` variables
//! (`KRAKEN_EXPORTER_POLL_INTERVAL=10s`; nested keys use `__`). When no account is configured at all,
//! `KRAKEN_API_KEY` with `KRAKEN_API_SECRET` (base64) or `KRAKEN_API_SECRET_FILE` define one account
//! named `default`, so a container needs no file.

mod account;
mod environment;
mod options;
mod schema;
mod secrets;
mod thresholds;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::{SecretSlice, SecretString};

pub use environment::ACCOUNT_VARIABLES;
pub use options::{OptionSpec, OptionValue, Options};
pub use secrets::{forbid_core_dumps, read_otp_file, read_secret_file, take_environment};
pub use thresholds::exact_decimal;
pub use validate::parse_duration;
pub use validate::LONGEST_INTERVAL;

use crate::kraken::{AssetFamily, RebaseMultiplier};
use environment::env_overrides;
use schema::RawSettings;
use validate::explain_config_error;

/// The prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "KRAKEN_EXPORTER";
pub const DEFAULT_API_URL: &str = "https://api.kraken.com";
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_PRICE_INTERVAL: Duration = Duration::from_secs(60);
pub const MIN_PRICE_INTERVAL: Duration = Duration::from_secs(5);

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL without a trailing slash; requests go to `{api_url}/0/private/BalanceEx`.
    pub api_url: String,
    pub poll_interval: Duration,
    pub request_timeout: Duration,
    pub rebase_multiplier: Option<RebaseMultiplier>,
    /// The longest wait between attempts after failures.
    pub max_backoff: Duration,
    /// When set, an account's balance series are removed once its last success is older than this.
    pub stale_after: Option<Duration>,
    /// Currencies to value balances in; empty turns valuation (and the public API calls) off.
    pub quote_currencies: Vec<String>,
    /// How often prices are refreshed from Kraken's public API.
    pub price_interval: Duration,
    /// The most rows a `BalanceEx` answer may have; a larger one is refused as a decode error.
    pub max_assets: usize,
    /// Base URL of Kraken Futures without a trailing slash (`https://futures.kraken.com`).
    pub futures_api_url: String,
    /// The spot keys' verification tier (`starter`, `intermediate`, `pro`), for the rate warning.
    pub rate_limit_tier: String,
    pub accounts: Vec<AccountSettings>,
    /// The endpoints' top-level options (`key_info_interval`), checked by their endpoints.
    pub options: Options,
}

/// The default of `max_assets`: Kraken lists about 1,000 assets; an answer five times that large is
/// not a real account's.
pub const DEFAULT_MAX_ASSETS: usize = 5_000;

impl Settings {
    /// Settings with every default (as a file with only `api_url` and these accounts would give):
    /// the one builder of the demo and the tests, which then change what they need.
    pub fn with_defaults(api_url: impl Into<String>, accounts: Vec<AccountSettings>) -> Self {
        Self {
            api_url: api_url.into(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            rebase_multiplier: None,
            max_backoff: DEFAULT_MAX_BACKOFF,
            stale_after: None,
            quote_currencies: vec!["USD".to_string()],
            price_interval: DEFAULT_PRICE_INTERVAL,
            max_assets: DEFAULT_MAX_ASSETS,
            futures_api_url: crate::kraken::futures::DEFAULT_FUTURES_API_URL.to_string(),
            rate_limit_tier: "starter".to_string(),
            accounts,
            options: Options::default(),
        }
    }
}

impl AccountSettings {
    /// An account without thresholds; `api_secret` already base64-decoded.
    pub fn new(name: impl Into<String>, api_key: impl Into<String>, api_secret: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            api_key: SecretString::from(api_key.into()),
            api_secret: SecretSlice::from(api_secret),
            min_available: Vec::new(),
            min_spendable: Vec::new(),
            api_otp: None,
            futures: None,
            options: Options::default(),
        }
    }
}

/// One Kraken account (one API key).
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// The `account` label value.
    pub name: String,
    pub api_key: SecretString,
    /// The decoded private key.
    pub api_secret: SecretSlice<u8>,
    /// Alert thresholds, exported as `kraken_balance_available_min`.
    pub min_available: Vec<MinAvailable>,
    /// Alert thresholds on what can be spent of an asset, exported as `kraken_spendable_min`.
    pub min_spendable: Vec<MinSpendable>,
    /// The key's 2FA password, sent as `otp` with every private call.
    pub api_otp: Option<SecretString>,
    /// The account's Kraken Futures key pair: poll its wallets too.
    pub futures: Option<FuturesSettings>,
    /// The options of the endpoints it turns on (`margin = true`), each read by its endpoint.
    pub options: Options,
}

/// An account's Kraken Futures key pair (a key of its own, with a nonce sequence of its own).
#[derive(Debug, Clone)]
pub struct FuturesSettings {
    /// The futures public key (never the spot key).
    pub api_key: SecretString,
    /// The decoded futures private key.
    pub api_secret: SecretSlice<u8>,
}

/// A minimum available amount for one asset and family of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinAvailable {
    /// The `asset` label value (legacy codes such as `ZUSD` are written as their modern name `USD`).
    pub asset: String,
    pub family: AssetFamily,
    pub amount: Decimal,
}

/// A minimum spendable amount for one asset of an account (spot and auto-earn rows together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinSpendable {
    /// The `asset` label value (`ZUSD` is written as `USD`).
    pub asset: String,
    pub amount: Decimal,
}

/// A configuration problem, as one line for the operator.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub(crate) fn err(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

impl Settings {
    /// Loads from an optional file and an environment: the process's, taken with
    /// [`take_environment`], or one a test passes.
    /// `specs`: the endpoints' options (the table of endpoints has them), checked here.
    pub fn load(
        file: Option<&Path>,
        env: BTreeMap<String, String>,
        specs: &[OptionSpec],
    ) -> Result<Self, ConfigError> {
        let Some(path) = file else {
            return Self::from_toml(None, "the environment", env, specs);
        };
        let text = crate::files::read_text_bounded(path, crate::files::MAX_CONFIG_FILE_BYTES)
            .map_err(|e| {
                err(format!(
                    "config file {}: {e} (--config.file)",
                    path.display()
                ))
            })?;
        Self::from_toml(
            Some(&text),
            &format!("config file {}", path.display()),
            env,
            specs,
        )
    }

    /// Loads from the text of a TOML file (`None`: no file) and an environment; `where_` names the
    /// source in error messages.
    pub fn from_toml(
        text: Option<&str>,
        where_: &str,
        env: BTreeMap<String, String>,
        specs: &[OptionSpec],
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(text) = text {
            builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
        }
        let endpoint_keys: Vec<&str> = specs
            .iter()
            .flat_map(|spec| spec.global_keys.iter().copied())
            .collect();
        let overrides = env_overrides(&env, &endpoint_keys);
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                // Lists are comma-separated: KRAKEN_EXPORTER_QUOTE_CURRENCIES=USD,EUR.
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("quote_currencies")
                .source(Some(overrides)),
        );
        let raw: RawSettings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| {
                err(environment::name_the_variable(
                    explain_config_error(&e.to_string(), where_),
                    &env,
                ))
            })?;
        options::refuse_unknown(
            &raw.options,
            raw.accounts.iter().map(|account| &account.options),
            specs,
            where_,
        )?;
        let settings = validate::settings(raw, &env)
            .map_err(|e| err(environment::name_the_variable(e.0, &env)))?;
        options::check(&settings, specs)
            .map_err(|e| err(environment::name_the_variable(e.0, &env)))?;
        Ok(settings)
    }

    /// A one-line summary without secrets, for `--check-config` and the start-up log.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.accounts.iter().map(|a| a.name.as_str()).collect();
        format!(
            "{} account(s) [{}], api_url {}, poll_interval {}, request_timeout {}, rebase_multiplier {}, max_backoff {}, stale_after {}, quote_currencies [{}], price_interval {}, max_assets {}",
            self.accounts.len(),
            names.join(", "),
            self.api_url,
            humantime::format_duration(self.poll_interval),
            humantime::format_duration(self.request_timeout),
            self.rebase_multiplier.map_or("unset", RebaseMultiplier::as_str),
            humantime::format_duration(self.max_backoff),
            self.stale_after
                .map_or("off".to_string(), |d| humantime::format_duration(d).to_string()),
            self.quote_currencies.join(", "),
            humantime::format_duration(self.price_interval),
            self.max_assets,
        ) + &self.futures_summary()
    }

    /// `, futures [a, b] at <futures_api_url>` when any account has a futures key pair.
    fn futures_summary(&self) -> String {
        let futures: Vec<&str> = self
            .accounts
            .iter()
            .filter(|a| a.futures.is_some())
            .map(|a| a.name.as_str())
            .collect();
        if futures.is_empty() {
            return String::new();
        }
        format!(
            ", futures [{}] at {}",
            futures.join(", "),
            self.futures_api_url
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kraken::sign::decode_secret;
    use std::io::Write;

    const SECRET: &str =
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mut secret = std::fs::File::create(dir.path().join("secret")).unwrap();
            writeln!(secret, "  {SECRET}  ").unwrap();
            std::fs::write(dir.path().join("bad-secret"), "this is not base64!!").unwrap();
            std::fs::write(dir.path().join("empty-secret"), "\n").unwrap();
            Self { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        fn load(&self, toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
            let toml = toml.replace("$DIR", &self.dir.path().display().to_string());
            let file = self.dir.path().join("config.toml");
            std::fs::write(&file, toml).unwrap();
            let env = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.replace("$DIR", &self.path(""))))
                .collect();
            Settings::load(Some(&file), env, &[TEST_OPTIONS])
        }
    }

    /// An endpoint's options as the configuration sees them: it owns `watch` (an account flag, refused
    /// when `false` to show the check runs) and `watch_interval` (top level).
    const TEST_OPTIONS: OptionSpec = OptionSpec {
        account_keys: &["watch"],
        global_keys: &["watch_interval"],
        check: |settings, account, at| {
            if account.options.flag(at, "watch")? == Some(false) {
                return Err(err(format!(
                    "{at}: watch = false is refused by its endpoint"
                )));
            }
            settings.options.text("", "watch_interval").map(|_| ())
        },
    };

    const ONE_ACCOUNT: &str = r#"
        [[accounts]]
        name = "main"
        api_key = "KEY-abcd"
        api_secret_file = "$DIR/secret"
    "#;

    #[test]
    fn defaults_apply_to_a_minimal_file() {
        let settings = Fixture::new().load(ONE_ACCOUNT, &[]).unwrap();
        assert_eq!(settings.api_url, "https://api.kraken.com");
        assert_eq!(settings.poll_interval, Duration::from_secs(30));
        assert_eq!(settings.request_timeout, Duration::from_secs(10));
        assert_eq!(settings.rebase_multiplier, None);
        assert_eq!(settings.max_backoff, Duration::from_secs(900));
        assert_eq!(settings.stale_after, None);
        assert_eq!(settings.quote_currencies, vec!["USD".to_string()]);
        assert_eq!(settings.price_interval, Duration::from_secs(60));
        assert_eq!(settings.accounts.len(), 1);
        assert_eq!(settings.accounts[0].name, "main");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&settings.accounts[0].api_secret),
            decode_secret(SECRET).unwrap().as_slice()
        );
    }

    #[test]
    fn every_key_is_read_and_environment_overrides_the_file() {
        let toml = format!(
            "api_url = \"http://127.0.0.1:8080/\"\npoll_interval = \"1m\"\nrequest_timeout = \"3s\"\nrebase_multiplier = \"base\"\nmax_backoff = \"1h\"\nstale_after = \"10m\"\n{ONE_ACCOUNT}"
        );
        let settings = Fixture::new()
            .load(
                &toml,
                &[
                    ("KRAKEN_EXPORTER_POLL_INTERVAL", "45s"),
                    ("KRAKEN_EXPORTER_MAX_BACKOFF", "2h"),
                    ("KRAKEN_EXPORTER_STALE_AFTER", "20m"),
                    ("KRAKEN_EXPORTER_PRICE_INTERVAL", "90s"),
                    ("KRAKEN_EXPORTER_QUOTE_CURRENCIES", "EUR,XBT"),
                    ("KRAKEN_EXPORTER_REQUEST_TIMEOUT", "4s"),
                ],
            )
            .unwrap();
        assert_eq!(settings.api_url, "http://127.0.0.1:8080");
        assert_eq!(settings.poll_interval, Duration::from_secs(45));
        assert_eq!(settings.rebase_multiplier, Some(RebaseMultiplier::Base));
        assert_eq!(settings.max_backoff, Duration::from_secs(7200));
        assert_eq!(settings.stale_after, Some(Duration::from_secs(1200)));
        assert_eq!(settings.price_interval, Duration::from_secs(90));
        assert_eq!(
            settings.quote_currencies,
            vec!["EUR".to_string(), "XBT".to_string()]
        );
        assert_eq!(settings.request_timeout, Duration::from_secs(4));
    }

    #[test]
    fn environment_defines_a_default_account_when_none_is_configured() {
        let fixture = Fixture::new();
        let from_secret = fixture
            .load(
                "",
                &[("KRAKEN_API_KEY", "K1"), ("KRAKEN_API_SECRET", SECRET)],
            )
            .unwrap();
        assert_eq!(from_secret.accounts[0].name, "default");
        let from_file = fixture
            .load(
                "",
                &[
                    ("KRAKEN_API_KEY", "K1"),
                    ("KRAKEN_API_SECRET_FILE", "$DIR/secret"),
                ],
            )
            .unwrap();
        assert_eq!(from_file.accounts[0].name, "default");
    }

    #[test]
    fn invalid_input_is_refused_with_one_line_naming_the_problem() {
        let fixture = Fixture::new();
        let account = |extra: &str| format!("{ONE_ACCOUNT}{extra}");
        // (config file, environment, words the error must contain)
        type Case<'a> = (String, Vec<(&'a str, &'a str)>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (account("\npoll_intervall = \"5s\""), vec![], vec!["poll_intervall", "unknown key"]),
            (format!("poll_interval = \"5 parsecs\"\n{ONE_ACCOUNT}"), vec![], vec!["poll_interval", "5 parsecs"]),
            (format!("poll_interval = \"0s\"\n{ONE_ACCOUNT}"), vec![], vec!["poll_interval", "longer than zero"]),
            (format!("poll_interval = \"500ms\"\n{ONE_ACCOUNT}"), vec![], vec!["poll_interval", "minimum"]),
            (format!("poll_interval = \"-5s\"\n{ONE_ACCOUNT}"), vec![], vec!["poll_interval", "-5s"]),
            (format!("request_timeout = \"ten\"\n{ONE_ACCOUNT}"), vec![], vec!["request_timeout"]),
            (format!("request_timeout = \"0s\"\n{ONE_ACCOUNT}"), vec![], vec!["request_timeout", "zero"]),
            (format!("max_backoff = \"10s\"\n{ONE_ACCOUNT}"), vec![], vec!["max_backoff", "poll_interval"]),
            (format!("max_backoff = \"-1m\"\n{ONE_ACCOUNT}"), vec![], vec!["max_backoff"]),
            (format!("stale_after = \"20s\"\n{ONE_ACCOUNT}"), vec![], vec!["stale_after", "poll_interval"]),
            (format!("stale_after = \"soon\"\n{ONE_ACCOUNT}"), vec![], vec!["stale_after", "soon"]),
            (format!("quote_currencies = [\"USD\", \"\"]\n{ONE_ACCOUNT}"), vec![], vec!["quote_currencies"]),
            (format!("quote_currencies = [\"USD\", \"ZUSD\"]\n{ONE_ACCOUNT}"), vec![], vec!["quote_currencies", "twice"]),
            (format!("price_interval = \"1s\"\n{ONE_ACCOUNT}"), vec![], vec!["price_interval", "5s"]),
            (format!("max_assets = 0\n{ONE_ACCOUNT}"), vec![], vec!["max_assets", "between 1 and"]),
            (ONE_ACCOUNT.to_string(), vec![("KRAKEN_EXPORTER_MAX_ASSETS", "2000000")], vec!["max_assets", "2000000"]),
            (format!("rebase_multiplier = \"double\"\n{ONE_ACCOUNT}"), vec![], vec!["rebase_multiplier", "base"]),
            (format!("api_url = \"ftp://x\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url"]),
            (format!("api_url = \"https://api.kraken.com/0/private\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "path"]),
            (format!("api_url = \"http://api.kraken.com\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "clear text", "https"]),
            (format!("api_url = \"http://10.0.0.8:8080\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "loopback"]),
            (format!("api_url = \"https://user:hunter2@api.kraken.com\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "user name or password", "***@api.kraken.com"]),
            (format!("api_url = \"https://api.kraken.com/?x=1\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "query"]),
            (format!("api_url = \"https://api.kraken.com#top\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "fragment"]),
            (format!("{ONE_ACCOUNT}{}", ONE_ACCOUNT.replace("\"main\"", "\"other\"")), vec![], vec!["\"main\"", "\"other\"", "same api_key"]),
            (String::new(), vec![], vec!["no accounts"]),
            (format!("{ONE_ACCOUNT}{ONE_ACCOUNT}"), vec![], vec!["\"main\"", "twice"]),
            (ONE_ACCOUNT.replace("\"main\"", "\"\""), vec![], vec!["name"]),
            (ONE_ACCOUNT.replace("KEY-abcd", " "), vec![], vec!["api_key"]),
            (ONE_ACCOUNT.replace("/secret", "/missing"), vec![], vec!["api_secret_file", "missing"]),
            (ONE_ACCOUNT.replace("/secret", "/bad-secret"), vec![], vec!["bad-secret", "base64"]),
            (ONE_ACCOUNT.replace("/secret", "/empty-secret"), vec![], vec!["empty-secret", "empty"]),
            (ONE_ACCOUNT.replace("$DIR/secret", "/dev/zero"), vec![], vec!["/dev/zero", "not a regular file"]),
            (ONE_ACCOUNT.replace("api_secret_file = \"$DIR/secret\"", ""), vec![], vec!["api_secret_file"]),
            (account("\n[[accounts]]\nname = \"x\"\napi_key = \"k\"\napi_secret = \"inline\"\napi_secret_file=\"$DIR/secret\""), vec![], vec!["api_secret", "unknown key"]),
            ("poll_interval = \"5s\"\n[[accounts]\n".to_string(), vec![], vec!["line 2"]),
            (ONE_ACCOUNT.to_string(), vec![("KRAKEN_EXPORTER_POLL_INTERVAL", "5")], vec!["poll_interval", "unit"]),
            (String::new(), vec![("KRAKEN_API_KEY", "K")], vec!["KRAKEN_API_SECRET"]),
            (account("[[accounts.min_available]]\nasset = \"USD\"\namount = \"-1\""), vec![], vec!["min_available[0]", "negative"]),
            (account("[[accounts.min_available]]\nasset = \"USD\"\namount = \"lots\""), vec![], vec!["min_available[0]", "lots"]),
            (account("[[accounts.min_available]]\nasset = \"USD\""), vec![], vec!["min_available[0]", "amount"]),
            (account("[[accounts.min_available]]\namount = \"1\""), vec![], vec!["min_available[0]", "asset"]),
            (account("[[accounts.min_available]]\nasset = \"USD\"\namount = \"1\"\nminimum = 2"), vec![], vec!["minimum", "unknown key"]),
            (account("[[accounts.min_available]]\nasset = \"USD\"\namount = \"1\"\n[[accounts.min_available]]\nasset = \"ZUSD\"\namount = \"2\""), vec![], vec!["USD", "twice"]),
            (account("[[accounts.min_spendable]]\nasset = \"USD\"\namount = \"-1\""), vec![], vec!["min_spendable[0]", "negative"]),
            (account("[[accounts.min_spendable]]\nasset = \"USD\"\namount = \"plenty\""), vec![], vec!["min_spendable[0]", "plenty"]),
            (account("[[accounts.min_spendable]]\namount = \"1\""), vec![], vec!["min_spendable[0]", "asset"]),
            (account("[[accounts.min_spendable]]\nasset = \"USD\"\namount = \"1\"\nfamily = \"spot\""), vec![], vec!["family", "unknown key"]),
            (account("[[accounts.min_spendable]]\nasset = \"USD\"\namount = \"1\"\n[[accounts.min_spendable]]\nasset = \"ZUSD\"\namount = \"2\""), vec![], vec!["min_spendable", "USD", "twice"]),
            (account("min_spendable = \"USD 100\""), vec![], vec!["min_spendable"]),
            (account("watch = false"), vec![], vec!["account \"main\": watch = false is refused by its endpoint"]),
            (account("watch = \"yes\""), vec![], vec!["account \"main\": watch = \"yes\" must be true or false"]),
            (account("wacth = true"), vec![], vec!["wacth", "unknown key"]),
            (format!("watch_intervall = \"1m\"\n{ONE_ACCOUNT}"), vec![], vec!["watch_intervall", "unknown key"]),
            (format!("watch_interval = 5\n{ONE_ACCOUNT}"), vec![], vec!["watch_interval = 5 must be a string"]),
            (account("api_otp_file = \"$DIR/missing-otp\""), vec![], vec!["api_otp_file", "missing-otp"]),
            (account("api_otp_file = \"$DIR/empty-secret\""), vec![], vec!["api_otp_file", "empty"]),
            (String::new(), vec![("KRAKEN_API_OTP_FILE", "/x")], vec!["KRAKEN_API_KEY"]),
            (String::new(), vec![("KRAKEN_API_SECRET", SECRET)], vec!["KRAKEN_API_KEY"]),
            (String::new(), vec![("KRAKEN_API_KEY", "K"), ("KRAKEN_API_SECRET", "%%%")], vec!["KRAKEN_API_SECRET", "base64"]),
        ];
        for (toml, env, words) in cases {
            let message = match fixture.load(&toml, &env) {
                Ok(_) => panic!("accepted invalid config:\n{toml}\n{env:?}"),
                Err(ConfigError(message)) => message,
            };
            assert!(!message.contains('\n'), "one line: {message}");
            assert!(!message.contains(SECRET), "no secret: {message}");
            assert!(!message.contains("hunter2"), "no password: {message}");
            assert!(!message.contains("KEY-abcd"), "no API key: {message}");
            for word in words {
                assert!(
                    message.contains(word),
                    "{message:?} should mention {word:?}"
                );
            }
        }
    }

    #[test]
    fn plain_http_is_allowed_to_loopback_addresses_only() {
        let fixture = Fixture::new();
        for url in [
            "http://127.0.0.1:8080",
            "http://127.0.0.2",
            "http://[::1]:8080",
            "http://localhost:3128",
            "https://10.0.0.8",
        ] {
            let settings = fixture
                .load(&format!("api_url = \"{url}\"\n{ONE_ACCOUNT}"), &[])
                .unwrap_or_else(|e| panic!("{url} refused: {e}"));
            assert_eq!(settings.api_url, url);
        }
        // A name under .localhost may be resolved through DNS: not loopback for certain.
        for url in ["http://kraken.localhost:8080", "http://LOCALHOST.localhost"] {
            let message = fixture
                .load(&format!("api_url = \"{url}\"\n{ONE_ACCOUNT}"), &[])
                .unwrap_err()
                .to_string();
            assert!(message.contains("use 127.0.0.1"), "{url}: {message}");
        }
    }

    #[test]
    fn quote_currencies_can_be_chosen_or_turned_off() {
        let fixture = Fixture::new();
        let two = fixture
            .load(&format!("quote_currencies = [\"EUR\", \"XXBT\"]\nprice_interval = \"2m\"\n{ONE_ACCOUNT}"), &[])
            .unwrap();
        assert_eq!(
            two.quote_currencies,
            vec!["EUR".to_string(), "XBT".to_string()]
        );
        assert_eq!(two.price_interval, Duration::from_secs(120));
        let off = fixture
            .load(&format!("quote_currencies = []\n{ONE_ACCOUNT}"), &[])
            .unwrap();
        assert!(off.quote_currencies.is_empty());
    }

    #[test]
    fn a_2fa_password_is_opt_in_per_account_and_endpoint_options_are_kept_for_their_endpoint() {
        let fixture = Fixture::new();
        std::fs::write(
            fixture.dir.path().join("otp"),
            "  correct horse battery  \n",
        )
        .unwrap();
        let plain = fixture.load(ONE_ACCOUNT, &[]).unwrap();
        let account = &plain.accounts[0];
        assert!(account.api_otp.is_none() && !account.options.contains("watch"));
        let toml = format!("{ONE_ACCOUNT}api_otp_file = \"$DIR/otp\"\nwatch = true\n");
        let settings = fixture.load(&toml, &[]).unwrap();
        let account = &settings.accounts[0];
        assert_eq!(account.options, Options::default().with("watch", true));
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(account.api_otp.as_ref().unwrap()),
            "correct horse battery"
        );
        let global = fixture
            .load(&format!("watch_interval = \"1m\"\n{ONE_ACCOUNT}"), &[])
            .unwrap();
        assert_eq!(
            global.options,
            Options::default().with("watch_interval", "1m")
        );
        let from_variable = fixture
            .load(ONE_ACCOUNT, &[("KRAKEN_EXPORTER_WATCH_INTERVAL", "2m")])
            .unwrap();
        assert_eq!(
            from_variable.options,
            Options::default().with("watch_interval", "2m")
        );
        // The environment account takes its 2FA password from a file too.
        let from_env = fixture
            .load(
                "",
                &[
                    ("KRAKEN_API_KEY", "K"),
                    ("KRAKEN_API_SECRET", SECRET),
                    ("KRAKEN_API_OTP_FILE", "$DIRotp"),
                ],
            )
            .unwrap();
        assert!(from_env.accounts[0].api_otp.is_some());
    }

    #[test]
    fn booleans_are_true_or_false_and_quote_currencies_kraken_codes() {
        let fixture = Fixture::new();
        for value in ["\"yes\"", "\"no\"", "1", "0", "\"true\"", "\"on\""] {
            let message = fixture
                .load(&format!("{ONE_ACCOUNT}watch = {value}\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(
                message.contains("must be true or false")
                    && message.starts_with("account \"main\": watch = "),
                "watch = {value}: {message}"
            );
        }
        let lower = fixture
            .load(
                &format!("quote_currencies = [\"usd\", \"btc\", \"ZEUR\"]\n{ONE_ACCOUNT}"),
                &[],
            )
            .unwrap();
        assert_eq!(lower.quote_currencies, ["USD", "XBT", "EUR"]);
        let message = fixture
            .load(
                &format!("quote_currencies = [\"DOLLARS\"]\n{ONE_ACCOUNT}"),
                &[],
            )
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("\"DOLLARS\" is not a currency Kraken quotes prices in")
                && message.contains("USD, EUR"),
            "{message}"
        );
        assert_eq!(
            fixture.load(ONE_ACCOUNT, &[]).unwrap().rate_limit_tier,
            "starter"
        );
        let pro = fixture
            .load(&format!("rate_limit_tier = \"Pro\"\n{ONE_ACCOUNT}"), &[])
            .unwrap();
        assert_eq!(pro.rate_limit_tier, "pro");
        let message = fixture
            .load(&format!("rate_limit_tier = \"gold\"\n{ONE_ACCOUNT}"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("not a Kraken verification tier"),
            "{message}"
        );
    }

    #[test]
    fn a_futures_key_pair_is_read_per_account_and_from_the_environment() {
        let fixture = Fixture::new();
        let plain = fixture.load(ONE_ACCOUNT, &[]).unwrap();
        assert!(plain.accounts[0].futures.is_none());
        assert_eq!(plain.futures_api_url, "https://futures.kraken.com");
        let toml = format!(
            "futures_api_url = \"http://127.0.0.1:9/\"\n{ONE_ACCOUNT}futures_api_key = \" FKEY \"\nfutures_api_secret_file = \"$DIR/secret\"\n"
        );
        let settings = fixture.load(&toml, &[]).unwrap();
        assert_eq!(settings.futures_api_url, "http://127.0.0.1:9");
        let futures = settings.accounts[0].futures.as_ref().unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&futures.api_key),
            "FKEY"
        );

        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&futures.api_secret),
            decode_secret(SECRET).unwrap().as_slice()
        );
        let from_env = fixture
            .load(
                "",
                &[
                    ("KRAKEN_API_KEY", "K"),
                    ("KRAKEN_API_SECRET", SECRET),
                    ("KRAKEN_FUTURES_API_KEY", "FK"),
                    ("KRAKEN_FUTURES_API_SECRET_FILE", "$DIRsecret"),
                ],
            )
            .unwrap();
        let futures = from_env.accounts[0].futures.as_ref().unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&futures.api_key), "FK");
        let env_url = fixture
            .load(
                ONE_ACCOUNT,
                &[("KRAKEN_EXPORTER_FUTURES_API_URL", "https://futures.example")],
            )
            .unwrap();
        assert_eq!(env_url.futures_api_url, "https://futures.example");
        assert!(
            settings
                .summary()
                .ends_with(", futures [main] at http://127.0.0.1:9"),
            "{}",
            settings.summary()
        );
        assert!(!plain.summary().contains("futures"));
    }

    #[test]
    fn futures_mistakes_are_refused_naming_the_key_without_the_secret() {
        let fixture = Fixture::new();
        let with = |extra: &str| fixture.load(&format!("{ONE_ACCOUNT}{extra}"), &[]);
        let cases = [
            (
                "futures_api_key = \"FKEY\"\n",
                "futures_api_secret_file is missing",
            ),
            (
                "futures_api_secret_file = \"$DIR/secret\"\n",
                "futures_api_key is missing",
            ),
            (
                "futures_api_key = \"KEY-abcd\"\nfutures_api_secret_file = \"$DIR/secret\"\n",
                "never spot keys",
            ),
            (
                "futures_api_key = \"F\"\nfutures_api_secret_file = \"$DIR/bad-secret\"\n",
                "futures_api_secret_file",
            ),
        ];
        for (extra, expected) in cases {
            let message = with(extra).unwrap_err().to_string();
            assert!(message.contains(expected), "{extra}: {message}");
            assert!(!message.contains(SECRET), "{message}");
        }
        let two = format!(
            "{ONE_ACCOUNT}futures_api_key = \"F\"\nfutures_api_secret_file = \"$DIR/secret\"\n[[accounts]]\nname = \"b\"\napi_key = \"KEY-b\"\napi_secret_file = \"$DIR/secret\"\nfutures_api_key = \"F\"\nfutures_api_secret_file = \"$DIR/secret\"\n"
        );
        let message = fixture.load(&two, &[]).unwrap_err().to_string();
        assert!(message.contains("same futures_api_key"), "{message}");
        for url in [
            "http://futures.example",
            "https://u:p@futures.example",
            "https://futures.example/?a=1",
        ] {
            let message = fixture
                .load(&format!("futures_api_url = \"{url}\"\n{ONE_ACCOUNT}"), &[])
                .unwrap_err()
                .to_string();
            assert!(message.starts_with("futures_api_url = "), "{message}");
            assert!(!message.contains("u:p"), "{message}");
        }
        let message = fixture
            .load(
                "",
                &[
                    ("KRAKEN_API_KEY", "K"),
                    ("KRAKEN_API_SECRET", SECRET),
                    ("KRAKEN_FUTURES_API_KEY", "FK"),
                ],
            )
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("KRAKEN_FUTURES_API_SECRET_FILE"),
            "{message}"
        );
        let message = fixture
            .load("", &[("KRAKEN_FUTURES_API_KEY", "FK")])
            .unwrap_err()
            .to_string();
        assert!(message.contains("KRAKEN_API_KEY is not"), "{message}");
    }

    #[test]
    fn minimum_spendable_amounts_are_read_exactly_under_modern_names() {
        let toml = format!(
            "{ONE_ACCOUNT}\n[[accounts.min_spendable]]\nasset = \"XXBT\"\namount = \"0.25\"\n[[accounts.min_spendable]]\nasset = \"USD\"\namount = \"0\"\n"
        );
        let settings = Fixture::new().load(&toml, &[]).unwrap();
        assert_eq!(
            settings.accounts[0].min_spendable,
            vec![
                MinSpendable {
                    asset: "XBT".into(),
                    amount: Decimal::new(25, 2)
                },
                MinSpendable {
                    asset: "USD".into(),
                    amount: Decimal::ZERO
                },
            ]
        );
    }

    #[test]
    fn threshold_assets_are_read_like_kraken_labels_in_any_spelling() {
        for written in ["btc", "BTC", "xbt", "XXBT"] {
            let toml = format!(
                "{ONE_ACCOUNT}\n[[accounts.min_spendable]]\nasset = \"{written}\"\namount = \"0.5\"\n[[accounts.min_available]]\nasset = \"{written}\"\namount = \"0.1\"\n"
            );
            let settings = Fixture::new().load(&toml, &[]).unwrap();
            assert_eq!(
                settings.accounts[0].min_spendable[0].asset, "XBT",
                "{written}"
            );
            assert_eq!(
                settings.accounts[0].min_available[0].asset, "XBT",
                "{written}"
            );
        }
        // Two spellings of one asset are one threshold written twice.
        let toml = format!(
            "{ONE_ACCOUNT}\n[[accounts.min_spendable]]\nasset = \"BTC\"\namount = \"1\"\n[[accounts.min_spendable]]\nasset = \"xbt\"\namount = \"2\"\n"
        );
        let message = Fixture::new().load(&toml, &[]).unwrap_err().to_string();
        assert!(message.contains("\"XBT\" twice"), "{message}");
        let toml = format!(
            "{ONE_ACCOUNT}\n[[accounts.min_spendable]]\nasset = \"doge\"\namount = \"1\"\n"
        );
        let settings = Fixture::new().load(&toml, &[]).unwrap();
        assert_eq!(settings.accounts[0].min_spendable[0].asset, "XDG");
    }

    #[test]
    fn durations_past_their_bound_are_refused_naming_the_bound() {
        for (key, value, bound) in [
            ("poll_interval", "300000000000y", "1day"),
            ("poll_interval", "2days", "1day"),
            ("max_backoff", "300000000000y", "1day"),
            ("price_interval", "1000d", "1day"),
            ("stale_after", "300000000000y", "30days"),
            ("request_timeout", "1000d", "5m"),
        ] {
            let message = Fixture::new()
                .load(&format!("{key} = \"{value}\"\n{ONE_ACCOUNT}"), &[])
                .unwrap_err()
                .to_string();
            assert!(
                message.starts_with(&format!(
                    "{key} = \"{value}\" is longer than the longest allowed, {bound};"
                )),
                "{key}: {message}"
            );
        }
        // The bounds themselves are accepted.
        let settings = Fixture::new()
            .load(&format!("poll_interval = \"1day\"\nmax_backoff = \"1day\"\nstale_after = \"30days\"\nrequest_timeout = \"5m\"\n{ONE_ACCOUNT}"), &[])
            .unwrap();
        assert_eq!(settings.stale_after, Some(Duration::from_secs(30 * 86400)));
    }

    #[test]
    fn a_problem_with_a_value_from_the_environment_names_the_variable() {
        let fixture = Fixture::new();
        let message = fixture
            .load(
                &format!("poll_interval = \"30s\"\n{ONE_ACCOUNT}"),
                &[("KRAKEN_EXPORTER_POLL_INTERVAL", "1")],
            )
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("KRAKEN_EXPORTER_POLL_INTERVAL (set by the environment): poll_interval = \"1\" is not a duration"),
            "{message}"
        );
        let message = fixture
            .load(ONE_ACCOUNT, &[("KRAKEN_EXPORTER_MAX_ASSETS", "lots")])
            .unwrap_err()
            .to_string();
        assert!(message.contains("KRAKEN_EXPORTER_MAX_ASSETS"), "{message}");
        // The same mistake in the file names no variable.
        let message = fixture
            .load(&format!("poll_interval = \"1\"\n{ONE_ACCOUNT}"), &[])
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("poll_interval = \"1\""), "{message}");
    }

    #[test]
    fn a_private_key_that_does_not_decode_to_64_bytes_is_refused() {
        let fixture = Fixture::new();
        std::fs::write(fixture.path("short-secret"), "c2Vj\n").unwrap();
        let toml = ONE_ACCOUNT.replace("$DIR/secret", "$DIR/short-secret");
        let message = fixture.load(&toml, &[]).unwrap_err().to_string();
        assert!(
            message.contains(
                "api_secret_file decodes to 3 bytes, but a Kraken API private key decodes to 64"
            ),
            "{message}"
        );
        let message = fixture
            .load(
                "",
                &[("KRAKEN_API_KEY", "KEY-env"), ("KRAKEN_API_SECRET", "c2Vj")],
            )
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("KRAKEN_API_SECRET decodes to 3 bytes"),
            "{message}"
        );
    }

    #[test]
    fn names_and_keys_must_be_strings() {
        for (line, key) in [
            ("name = 123", "accounts[0].name"),
            ("api_key = 42", "accounts[0].api_key"),
        ] {
            let toml = format!(
                "[[accounts]]\n{line}\n{}",
                if key.ends_with("name") {
                    "api_key = \"KEY-abcd\"\napi_secret_file = \"$DIR/secret\"\n"
                } else {
                    "name = \"main\"\napi_secret_file = \"$DIR/secret\"\n"
                }
            );
            let message = Fixture::new().load(&toml, &[]).unwrap_err().to_string();
            assert!(
                message.contains("expected a string in quotes") && message.contains(key),
                "{message}"
            );
        }
    }

    #[test]
    fn the_environment_account_takes_thresholds() {
        let env = [
            ("KRAKEN_API_KEY", "KEY-env"),
            ("KRAKEN_API_SECRET", SECRET),
            ("KRAKEN_MIN_SPENDABLE", "btc=0.5, USD=1000"),
            ("KRAKEN_MIN_AVAILABLE", "DOT/staked=100,EUR=5"),
        ];
        let settings = Fixture::new().load("", &env).unwrap();
        let account = &settings.accounts[0];
        assert_eq!(
            account.min_spendable,
            vec![
                MinSpendable {
                    asset: "XBT".into(),
                    amount: Decimal::new(5, 1)
                },
                MinSpendable {
                    asset: "USD".into(),
                    amount: Decimal::new(1000, 0)
                },
            ]
        );
        assert_eq!(
            account.min_available,
            vec![
                MinAvailable {
                    asset: "DOT".into(),
                    family: AssetFamily::Staked,
                    amount: Decimal::new(100, 0)
                },
                MinAvailable {
                    asset: "EUR".into(),
                    family: AssetFamily::Spot,
                    amount: Decimal::new(5, 0)
                },
            ]
        );
        let mut bad = env;
        bad[2] = ("KRAKEN_MIN_SPENDABLE", "XBT 0.5");
        let message = Fixture::new().load("", &bad).unwrap_err().to_string();
        assert!(
            message.starts_with("KRAKEN_MIN_SPENDABLE: \"XBT 0.5\" is not ASSET=AMOUNT"),
            "{message}"
        );
        bad[2] = ("KRAKEN_MIN_SPENDABLE", "XBT=-1");
        let message = Fixture::new().load("", &bad).unwrap_err().to_string();
        assert!(
            message.contains("KRAKEN_MIN_SPENDABLE[0]") && message.contains("negative"),
            "{message}"
        );
        bad[2] = ("KRAKEN_MIN_SPENDABLE", "BTC=1,xbt=2");
        let message = Fixture::new().load("", &bad).unwrap_err().to_string();
        assert!(message.contains("\"XBT\" twice"), "{message}");
    }

    #[test]
    fn minimum_available_amounts_are_read_exactly() {
        let toml = format!(
            "{ONE_ACCOUNT}\n[[accounts.min_available]]\nasset = \"ZUSD\"\namount = \"5000.25\"\n[[accounts.min_available]]\nasset = \"DOT\"\nfamily = \"staked\"\namount = 100\n"
        );
        let settings = Fixture::new().load(&toml, &[]).unwrap();
        let minimums = &settings.accounts[0].min_available;
        assert_eq!(
            minimums,
            &vec![
                MinAvailable {
                    asset: "USD".into(),
                    family: AssetFamily::Spot,
                    amount: Decimal::new(500025, 2)
                },
                MinAvailable {
                    asset: "DOT".into(),
                    family: AssetFamily::Staked,
                    amount: Decimal::new(100, 0)
                },
            ]
        );
    }

    #[test]
    fn unrelated_prefixed_variables_do_not_stop_the_exporter() {
        let env = [
            ("KRAKEN_EXPORTER_SERVICE_HOST", "10.0.0.1"),
            ("KRAKEN_EXPORTER_PORT", "tcp://10.0.0.1:9877"),
            ("KRAKEN_EXPORTER_PORT_9877_TCP_ADDR", "10.0.0.1"),
            ("KRAKEN_EXPORTER_POLL_INTERVALL", "5s"),
            ("KRAKEN_EXPORTER_REQUEST_TIMEOUT", "2s"),
        ];
        let settings = Fixture::new().load(ONE_ACCOUNT, &env).unwrap();
        assert_eq!(settings.request_timeout, Duration::from_secs(2));
        assert_eq!(settings.poll_interval, DEFAULT_POLL_INTERVAL);
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let settings = Fixture::new().load(ONE_ACCOUNT, &[]).unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("KEY-abcd"), "{debug}");
        assert!(debug.contains("REDACTED"));
        let summary = settings.summary();
        assert!(
            summary.contains("main") && !summary.contains("KEY-abcd"),
            "{summary}"
        );
    }
}
