//! The key itself: `GetApiKeyInfo` (every spot key) and the Kraken Futures key check (every futures
//! key) -> `kraken_api_key_*{account, api}`: what the key may do, whether any of that moves money,
//! when it expires, whether it is bound to addresses, its query window and when it was changed.
//!
//! On by default (`key_info = false` turns both off for an account), called at start and then every
//! `key_info_interval` (15 minutes by default). Both lines share the families: each owns the rows of
//! its `api` label (`spot`, `futures`), so one key's answer never removes the other's.
//!
//! A permission moves funds unless it is one of [`QUERY_ONLY`] (spot) or a futures permission read
//! only; a string the exporter does not know counts as moving funds, and is named in the log once per
//! collector. What an operator reads (the key's name, permissions, what to remove, expiry and
//! allowlist) goes to the status page and `--once` as the collector's [`Collector::notes`]. Neither
//! the key, the IBAN nor the account uid is ever read from the answers (see [`crate::kraken::api_key`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Collector, Context, Endpoint, EndpointFamilies, Fetch};
use crate::config::{ConfigError, OptionSpec, Settings};
use crate::kraken::api_key::{KeyInfo, METHOD, PERMISSION};
use crate::kraken::futures::key_check;
use crate::kraken::futures::FuturesClient;
use crate::kraken::{ErrorReason, KrakenClient, PollError};
use crate::metrics::{AccountSeries, Changes, Metrics, Scope};

/// The table's line of the spot key: every account, unless `key_info = false`.
pub(super) const SPOT: Endpoint = Endpoint {
    method: METHOD,
    permission: PERMISSION,
    cost: |_| 1,
    decides_up: false,
    register: |metrics| Arc::new(KeyFamilies::register(metrics, Api::Spot)),
    polls: |account| account.options.is_on("key_info", true),
    interval: key_info_interval,
    options: OPTIONS,
    thresholds: |_| Vec::new(),
};

/// The table's line of the futures key: accounts with one, unless `key_info = false`.
pub(super) const FUTURES: Endpoint = Endpoint {
    method: key_check::METHOD,
    permission: key_check::PERMISSION,
    cost: |_| 0,
    decides_up: false,
    register: |metrics| Arc::new(KeyFamilies::register(metrics, Api::Futures)),
    polls: |account| account.options.is_on("key_info", true) && account.futures.is_some(),
    interval: key_info_interval,
    // The spot line checks the options both lines share.
    options: OptionSpec::NONE,
    thresholds: |_| Vec::new(),
};

/// `key_info` (per account, default `true`) and `key_info_interval` (top level).
const OPTIONS: OptionSpec = OptionSpec {
    account_keys: &["key_info"],
    global_keys: &["key_info_interval"],
    check: |settings, account, at| {
        account.options.flag(at, "key_info")?;
        checked_interval(settings).map(|_| ())
    },
};

/// How often each key is asked by default.
pub const DEFAULT_KEY_INFO_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// The shortest `key_info_interval`: a key's permissions change rarely and each call costs rate
/// budget.
pub const MIN_KEY_INFO_INTERVAL: Duration = Duration::from_secs(60);

fn checked_interval(settings: &Settings) -> Result<Duration, ConfigError> {
    settings.options.duration(
        "key_info_interval",
        DEFAULT_KEY_INFO_INTERVAL,
        MIN_KEY_INFO_INTERVAL,
        crate::config::LONGEST_INTERVAL,
    )
}

/// `key_info_interval` (checked when the configuration was loaded).
pub fn key_info_interval(settings: &Settings) -> Duration {
    checked_interval(settings).unwrap_or(DEFAULT_KEY_INFO_INTERVAL)
}

/// Spot permissions that only read: every other string moves funds (or might).
pub const QUERY_ONLY: &[&str] = &[
    "query-funds",
    "query-open-trades",
    "query-closed-trades",
    "query-ledger-entries",
    "export-data",
];

/// Spot permissions known to move funds or place orders (named without "unknown" in the log).
const KNOWN_MOVING: &[&str] = &[
    "withdraw-funds",
    "deposit-funds",
    "modify-trades",
    "cancel-close-orders",
    "earn-funds",
];

/// Futures permission values that only read (`general:read_only`).
const READ_ONLY_VALUES: &[&str] = &["readonly", "read", "none", "noaccess", "view", "query"];

/// Which Kraken API a key belongs to: the `api` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Spot,
    Futures,
}

impl Api {
    fn label(self) -> &'static str {
        match self {
            Self::Spot => "spot",
            Self::Futures => "futures",
        }
    }

    fn method(self) -> &'static str {
        match self {
            Self::Spot => METHOD,
            Self::Futures => key_check::METHOD,
        }
    }

    /// Whether `permission` (Kraken's string) lets the key move funds or trade.
    pub fn moves_funds(self, permission: &str) -> bool {
        match self {
            Self::Spot => !QUERY_ONLY.contains(&permission),
            Self::Futures => {
                let value = permission.rsplit(':').next().unwrap_or(permission);
                let plain: String = value
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase();
                !READ_ONLY_VALUES.contains(&plain.as_str())
            }
        }
    }

    /// Whether the exporter knows what `permission` means.
    fn knows(self, permission: &str) -> bool {
        match self {
            Self::Spot => QUERY_ONLY.contains(&permission) || KNOWN_MOVING.contains(&permission),
            Self::Futures => !self.moves_funds(permission),
        }
    }
}

/// The key families, labels `{account, api}` (and `permission`).
pub struct KeyFamilies {
    api: Api,
    permission: AccountSeries,
    can_move_funds: AccountSeries,
    expiry: AccountSeries,
    ip_restricted: AccountSeries,
    nonce_window: AccountSeries,
    created: AccountSeries,
    modified: AccountSeries,
    query_start: AccountSeries,
    query_end: AccountSeries,
}

impl KeyFamilies {
    fn register(metrics: &Metrics, api: Api) -> Self {
        let data = Scope::Data(api.method());
        let family = |name: &str, help: &str, labels: &[&str]| {
            AccountSeries::register(metrics, data, name, help, labels)
        };
        Self {
            api,
            permission: family("kraken_api_key_permission", "1 for each permission the account's API key has, as Kraken names it (GetApiKeyInfo; the futures key check).", &["api", "permission"]),
            can_move_funds: family("kraken_api_key_can_move_funds", "1 when the API key has any permission beyond querying (withdraw, trade, deposit, earn, cancel, or one the exporter does not know): create a query-only key.", &["api"]),
            expiry: family("kraken_api_key_expiry_timestamp_seconds", "When the API key stops working (unix seconds); absent when it never expires.", &["api"]),
            ip_restricted: family("kraken_api_key_ip_restricted", "1 when the API key may be used only from listed addresses (an IP allowlist or CIDR block).", &["api"]),
            nonce_window: family("kraken_api_key_nonce_window", "How far out of order the API key's nonces may arrive (GetApiKeyInfo nonceWindow).", &["api"]),
            created: family("kraken_api_key_created_timestamp_seconds", "When the API key was created (unix seconds).", &["api"]),
            modified: family("kraken_api_key_modified_timestamp_seconds", "When the API key's permissions or settings were last changed (unix seconds).", &["api"]),
            query_start: family("kraken_api_key_query_window_start_timestamp_seconds", "The API key sees only what happened from this time (unix seconds); absent without a query window.", &["api"]),
            query_end: family("kraken_api_key_query_window_end_timestamp_seconds", "The API key sees only what happened up to this time (unix seconds); past it, balances stop moving. Absent without a query window.", &["api"]),
        }
    }

    fn publish(&self, metrics: &mut Changes<'_>, account: &str, info: &KeyInfo) {
        let api = self.api.label().to_string();
        let one = |value: Option<u64>| -> Vec<(Vec<String>, f64)> {
            value
                .map(|value| (vec![api.clone()], value as f64))
                .into_iter()
                .collect()
        };
        let permissions: Vec<(Vec<String>, f64)> = info
            .permissions
            .iter()
            .map(|p| (vec![api.clone(), p.clone()], 1.0))
            .collect();
        self.permission.replace(metrics, account, &permissions);
        let moves = info.permissions.iter().any(|p| self.api.moves_funds(p));
        self.can_move_funds
            .replace(metrics, account, &one(Some(u64::from(moves))));
        self.ip_restricted.replace(
            metrics,
            account,
            &one(Some(u64::from(info.ip_restricted()))),
        );
        self.expiry
            .replace(metrics, account, &one(info.valid_until));
        self.nonce_window
            .replace(metrics, account, &one(info.nonce_window));
        self.created.replace(metrics, account, &one(info.created));
        self.modified.replace(metrics, account, &one(info.modified));
        self.query_start
            .replace(metrics, account, &one(info.query_from));
        self.query_end
            .replace(metrics, account, &one(info.query_to));
    }
}

impl EndpointFamilies for KeyFamilies {
    fn collector(
        self: Arc<Self>,
        account: &crate::config::AccountSettings,
        context: &Context<'_>,
    ) -> Option<Box<dyn Collector>> {
        let futures = match self.api {
            Api::Spot => None,
            Api::Futures => Some(context.futures_client(account)?),
        };
        Some(Box::new(KeyCollector {
            account: account.name.clone(),
            futures,
            families: self,
            fetched: None,
            last: None,
            named: BTreeSet::new(),
        }))
    }
}

/// Asks Kraken about one key of an account.
pub struct KeyCollector {
    account: String,
    /// The futures key's client; `None` for the spot key (called with the account's client).
    futures: Option<FuturesClient>,
    families: Arc<KeyFamilies>,
    fetched: Option<KeyInfo>,
    /// The last answer, for the notes and to notice a change.
    last: Option<KeyInfo>,
    /// Permissions already named in the log.
    named: BTreeSet<String>,
}

impl KeyCollector {
    fn api(&self) -> Api {
        self.families.api
    }

    /// Logs what an operator must act on in `info`: each permission that moves funds (once), a
    /// change of the key's settings, a query window that has ended.
    fn log_findings(&mut self, info: &KeyInfo) {
        let api = self.api();
        for permission in info.permissions.iter().filter(|p| api.moves_funds(p)) {
            if !self.named.insert(permission.clone()) {
                continue;
            }
            tracing::warn!(
                account = %self.account,
                api = api.label(),
                permission = %permission,
                "{}",
                if api.knows(permission) {
                    "the API key can move funds or trade with this permission; the exporter needs only query permissions: create a query-only key and remove this one"
                } else {
                    "the API key has a permission the exporter does not know; it is counted as able to move funds (kraken_api_key_can_move_funds): check it on Kraken and remove it unless it only reads"
                }
            );
        }
        if let Some(last) = &self.last {
            if last.modified != info.modified || last.permissions != info.permissions {
                tracing::warn!(
                    account = %self.account,
                    api = api.label(),
                    permissions = %info.permissions.join(","),
                    "the API key's permissions or settings were changed on Kraken; if nobody on the team did it, someone with access to the Kraken account did"
                );
            }
        }
        if info.query_window_ended(now_seconds()) && self.last.as_ref() != Some(info) {
            tracing::warn!(
                account = %self.account,
                api = api.label(),
                "the API key's query window ended (queryTo is in the past): Kraken answers as of that time and balances stop moving; remove the window or create a new key"
            );
        }
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `key "name": permissions a, b; can move funds: remove x, y; expires 2026-...; allowlist: ...`.
pub fn describe(api: Api, info: &KeyInfo) -> String {
    let name = info
        .name
        .as_deref()
        .map_or(String::new(), |name| format!(" {name:?}"));
    let moving: Vec<&str> = info
        .permissions
        .iter()
        .filter(|p| api.moves_funds(p))
        .map(String::as_str)
        .collect();
    let verdict = if moving.is_empty() {
        "query only".to_string()
    } else {
        format!("CAN MOVE FUNDS: remove {}", moving.join(", "))
    };
    let time = |seconds: u64| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(seconds)).to_string()
    };
    let expiry = info.valid_until.map_or("never expires".to_string(), |at| {
        format!("expires {}", time(at))
    });
    let allowlist = if info.ip_restricted() {
        format!("allowlist {}", info.allowlist.join(", "))
    } else {
        "no IP allowlist (restrict it to the exporter's egress addresses)".to_string()
    };
    let window = match info.query_to {
        Some(to) if info.query_window_ended(now_seconds()) => {
            format!("; query window ENDED {} (balances stop moving)", time(to))
        }
        Some(to) => format!("; query window until {}", time(to)),
        None => String::new(),
    };
    format!(
        "{} key{name}: permissions {}; {verdict}; {expiry}; {allowlist}{window}",
        api.label(),
        if info.permissions.is_empty() {
            "none".to_string()
        } else {
            info.permissions.join(", ")
        },
    )
}

impl Collector for KeyCollector {
    fn endpoint(&self) -> &'static str {
        self.api().method()
    }

    fn permission(&self) -> &'static str {
        match self.api() {
            Api::Spot => PERMISSION,
            Api::Futures => key_check::PERMISSION,
        }
    }

    fn own_key(&self) -> bool {
        self.futures.is_some()
    }

    fn fetch<'a>(&'a mut self, spot: &'a KrakenClient) -> Fetch<'a> {
        Box::pin(async move {
            let info = match &self.futures {
                None => spot.api_key_info().await?,
                Some(client) => client.key_check().await.map_err(not_there)?,
            };
            let count = info.permissions.len();
            self.fetched = Some(info);
            Ok(count)
        })
    }

    fn apply(&mut self, account: &str, metrics: &mut Changes<'_>) {
        if let Some(info) = self.fetched.take() {
            self.families.publish(metrics, account, &info);
            self.log_findings(&info);
            self.last = Some(info);
        }
    }

    fn notes(&self) -> Vec<super::Note> {
        let api = self.api();
        self.last
            .iter()
            .map(|info| super::Note {
                text: describe(api, info),
                alarming: info.permissions.iter().any(|p| api.moves_funds(p))
                    || info.query_window_ended(now_seconds()),
            })
            .collect()
    }
}

/// The futures key check answering 404: the host has no such endpoint, which is "not offered".
fn not_there(err: PollError) -> PollError {
    if err.reason == ErrorReason::Http && err.message.starts_with("HTTP 404") {
        PollError::new(ErrorReason::NotOffered, err.message)
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_query_permissions_leave_a_key_unable_to_move_funds() {
        for p in QUERY_ONLY {
            assert!(!Api::Spot.moves_funds(p), "{p}");
        }
        for p in KNOWN_MOVING {
            assert!(Api::Spot.moves_funds(p), "{p}");
            assert!(Api::Spot.knows(p), "{p}");
        }
        assert!(Api::Spot.moves_funds("access-something-new"));
        assert!(!Api::Spot.knows("access-something-new"));
        assert!(!Api::Futures.moves_funds("general:read_only"));
        assert!(!Api::Futures.moves_funds("general:Read-Only"));
        assert!(Api::Futures.moves_funds("general:full"));
        assert!(Api::Futures.moves_funds("withdrawal"));
    }

    #[test]
    fn the_description_names_what_to_remove_and_the_window() {
        let info = KeyInfo {
            name: Some("treasury".into()),
            permissions: vec!["query-funds".into(), "withdraw-funds".into()],
            valid_until: Some(1_800_000_000),
            query_to: Some(1_000),
            ..KeyInfo::default()
        };
        let text = describe(Api::Spot, &info);
        assert!(text.starts_with("spot key \"treasury\""), "{text}");
        assert!(
            text.contains("CAN MOVE FUNDS: remove withdraw-funds;"),
            "{text}"
        );
        assert!(text.contains("expires 2027-01-15T08:00:00Z"), "{text}");
        assert!(text.contains("no IP allowlist"), "{text}");
        assert!(
            text.contains("query window ENDED 1970-01-01T00:16:40Z"),
            "{text}"
        );
        let safe = KeyInfo {
            permissions: vec!["query-funds".into()],
            allowlist: vec!["203.0.113.7".into()],
            ..KeyInfo::default()
        };
        let text = describe(Api::Spot, &safe);
        assert!(
            text.contains("query only; never expires; allowlist 203.0.113.7"),
            "{text}"
        );
    }
}
