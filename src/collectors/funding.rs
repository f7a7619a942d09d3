//! `WithdrawStatus` and `DepositStatus` -> money in flight: how many withdrawals and deposits are on
//! their way per asset and status, their amounts, and the time of the oldest, with the configured
//! time after which one is late (`withdrawal_stuck_after`, `deposit_unconfirmed_after`, 2 hours by
//! default), which `KrakenWithdrawalStuck` and `KrakenDepositUnconfirmed` compare with. Polled with
//! `funding = true`, every `poll_interval`, 1 point each.
//!
//! In flight is every status but `Success` and `Failure`, and not cancelled (`status-prop`
//! `canceled`): for a deposit `Settled` (seen, waiting for confirmations) is in flight until it is
//! credited. Each is its own line of the table: a key refused `WithdrawStatus` (Kraken puts it under
//! *Withdraw Funds*, a permission a monitoring key should not have) still reads deposits, and the
//! withdrawals themselves are counted from the ledger.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;

use super::{Collector, Context, Endpoint, EndpointFamilies, Fetch, Note, Shared};
use crate::config::{AccountSettings, ConfigError, OptionSpec};
use crate::exposition::to_f64;
use crate::kraken::funding::{Direction, Movement};
use crate::kraken::{ErrorReason, KrakenClient, PollError};
use crate::metrics::{AccountSeries, Changes, Metrics, Scope};

/// The table's line of withdrawals: accounts with `funding = true`.
pub(super) const WITHDRAWALS: Endpoint = line(Direction::Withdrawal, OPTIONS, |metrics| {
    Arc::new(FundingFamilies::register(metrics, Direction::Withdrawal))
});

/// The table's line of deposits (the withdrawals' line checks the options both share).
pub(super) const DEPOSITS: Endpoint = line(Direction::Deposit, OptionSpec::NONE, |metrics| {
    Arc::new(FundingFamilies::register(metrics, Direction::Deposit))
});

const fn line(
    direction: Direction,
    options: OptionSpec,
    register: fn(&Metrics) -> Arc<dyn EndpointFamilies>,
) -> Endpoint {
    Endpoint {
        method: direction.method(),
        permission: direction.permission(),
        cost: |_| 1,
        decides_up: false,
        register,
        polls: |account| account.options.is_on("funding", false),
        interval: super::every_poll,
        options,
        thresholds: |_| Vec::new(),
    }
}

/// `funding`, `withdrawal_stuck_after` and `deposit_unconfirmed_after` (per account).
const OPTIONS: OptionSpec = OptionSpec {
    account_keys: &[
        "funding",
        "withdrawal_stuck_after",
        "deposit_unconfirmed_after",
    ],
    global_keys: &[],
    check: |_, account, at| {
        account.options.flag(at, "funding")?;
        late_after(account, at, Direction::Withdrawal)?;
        late_after(account, at, Direction::Deposit).map(|_| ())
    },
};

/// How long a withdrawal or deposit may be in flight before it pages, by default.
pub const DEFAULT_LATE_AFTER: Duration = Duration::from_secs(2 * 3600);

fn late_key(direction: Direction) -> &'static str {
    match direction {
        Direction::Withdrawal => "withdrawal_stuck_after",
        Direction::Deposit => "deposit_unconfirmed_after",
    }
}

/// The account's `withdrawal_stuck_after` or `deposit_unconfirmed_after`.
fn late_after(
    account: &AccountSettings,
    at: &str,
    direction: Direction,
) -> Result<Duration, ConfigError> {
    account
        .options
        .duration(
            late_key(direction),
            DEFAULT_LATE_AFTER,
            Duration::from_secs(60),
            Duration::from_secs(30 * 24 * 3600),
        )
        .map_err(|err| crate::config::err(format!("{at}: {}", err.0)))
}

/// One direction's families.
pub struct FundingFamilies {
    direction: Direction,
    count: AccountSeries,
    amount: AccountSeries,
    oldest: AccountSeries,
    late_after: AccountSeries,
}

impl FundingFamilies {
    fn register(metrics: &Metrics, direction: Direction) -> Self {
        let data = Scope::Data(direction.method());
        let configured = Scope::Configured(direction.method());
        let series = |scope, name: &str, help: &str, labels: &[&str]| {
            AccountSeries::register(metrics, scope, name, help, labels)
        };
        match direction {
            Direction::Withdrawal => Self {
                direction,
                count: series(data, "kraken_withdrawals_in_flight", "Withdrawals on their way (not Success, Failure or cancelled), by asset and Kraken's status.", &["asset", "status"]),
                amount: series(data, "kraken_withdrawals_in_flight_amount", "Amount of the withdrawals on their way, by asset and status, in units of the asset.", &["asset", "status"]),
                oldest: series(data, "kraken_withdrawal_oldest_in_flight_timestamp_seconds", "Unix time when the oldest withdrawal still on its way was requested; absent when none is.", &["asset"]),
                late_after: series(configured, "kraken_withdrawal_stuck_after_seconds", "Configured time a withdrawal may be in flight (withdrawal_stuck_after); KrakenWithdrawalStuck fires past it.", &[]),
            },
            Direction::Deposit => Self {
                direction,
                count: series(data, "kraken_deposits_in_flight", "Deposits seen but not credited yet (not Success or Failure), by asset and Kraken's status.", &["asset", "status"]),
                amount: series(data, "kraken_deposits_in_flight_amount", "Amount of the deposits not credited yet, by asset and status, in units of the asset.", &["asset", "status"]),
                oldest: series(data, "kraken_deposit_oldest_in_flight_timestamp_seconds", "Unix time when the oldest deposit not credited yet was seen; absent when none is.", &["asset"]),
                late_after: series(configured, "kraken_deposit_unconfirmed_after_seconds", "Configured time a deposit may wait to be credited (deposit_unconfirmed_after); KrakenDepositUnconfirmed fires past it.", &[]),
            },
        }
    }
}

impl EndpointFamilies for FundingFamilies {
    fn collector(
        self: Arc<Self>,
        account: &AccountSettings,
        context: &Context<'_>,
    ) -> Option<Box<dyn Collector>> {
        account.options.is_on("funding", false).then(|| {
            Box::new(FundingCollector {
                late_after: late_after(account, "", self.direction).unwrap_or(DEFAULT_LATE_AFTER),
                shared: context.shared.clone(),
                families: self,
                fetched: None,
                in_flight: Vec::new(),
            }) as Box<dyn Collector>
        })
    }
}

/// Polls `WithdrawStatus` or `DepositStatus` for one account.
pub struct FundingCollector {
    shared: Shared,
    families: Arc<FundingFamilies>,
    late_after: Duration,
    fetched: Option<Vec<Movement>>,
    /// The last answer's movements in flight (for the status page's notes).
    in_flight: Vec<Movement>,
}

impl Collector for FundingCollector {
    fn endpoint(&self) -> &'static str {
        self.families.direction.method()
    }

    fn permission(&self) -> &'static str {
        self.families.direction.permission()
    }

    fn hint(&self, err: &PollError) -> String {
        match (err.reason, self.families.direction) {
            (ErrorReason::PermissionDenied, Direction::Withdrawal) => "Kraken puts WithdrawStatus under the \"Withdraw Funds\" permission: do not give a monitoring key that (it could move money). Withdrawals are still counted from the ledger (ledger = true), where KrakenFundsWithdrawn pages on them; set funding = false to stop calling WithdrawStatus and DepositStatus".to_string(),
            (ErrorReason::PermissionDenied, Direction::Deposit) => "the key lacks the \"Deposit Funds\" permission DepositStatus needs; add it on Kraken, or set funding = false (deposits are still counted from the ledger with ledger = true)".to_string(),
            (reason, _) => reason.hint().to_string(),
        }
    }

    fn configure(&self, account: &str, metrics: &mut Changes<'_>) {
        self.families.late_after.replace(
            metrics,
            account,
            &[(Vec::new(), self.late_after.as_secs_f64())],
        );
    }

    fn fetch<'a>(&'a mut self, client: &'a KrakenClient) -> Fetch<'a> {
        Box::pin(async move {
            let movements = client.funding_status(self.families.direction).await?;
            let count = movements.len();
            self.fetched = Some(movements);
            Ok(count)
        })
    }

    fn apply(&mut self, account: &str, metrics: &mut Changes<'_>) {
        let Some(movements) = self.fetched.take() else {
            return;
        };
        let in_flight: Vec<Movement> = movements.into_iter().filter(Movement::in_flight).collect();
        let mut sums: BTreeMap<(String, String), (u64, Decimal)> = BTreeMap::new();
        let mut oldest: BTreeMap<String, u64> = BTreeMap::new();
        for movement in &in_flight {
            let asset = self.shared.names.classify(&movement.asset).asset;
            let status = movement.status.to_ascii_lowercase();
            let sum = sums.entry((asset.clone(), status)).or_default();
            sum.0 += 1;
            sum.1 += movement.amount;
            let first = oldest.entry(asset).or_insert(movement.time);
            *first = (*first).min(movement.time);
        }
        let count: Vec<(Vec<String>, f64)> = sums
            .iter()
            .map(|((asset, status), (n, _))| (vec![asset.clone(), status.clone()], *n as f64))
            .collect();
        let amount: Vec<(Vec<String>, f64)> = sums
            .into_iter()
            .map(|((asset, status), (_, sum))| (vec![asset, status], to_f64(sum)))
            .collect();
        let oldest: Vec<(Vec<String>, f64)> = oldest
            .into_iter()
            .map(|(asset, time)| (vec![asset], time as f64))
            .collect();
        self.families.count.replace(metrics, account, &count);
        self.families.amount.replace(metrics, account, &amount);
        self.families.oldest.replace(metrics, account, &oldest);
        self.in_flight = in_flight;
    }

    fn notes(&self) -> Vec<Note> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let what = match self.families.direction {
            Direction::Withdrawal => "withdrawal",
            Direction::Deposit => "deposit",
        };
        self.in_flight
            .iter()
            .map(|movement| {
                let age = now.saturating_sub(movement.time);
                let late = age >= self.late_after.as_secs();
                Note {
                    text: format!(
                        "{what} of {} {} {} for {}{}",
                        movement.amount,
                        self.shared.names.classify(&movement.asset).asset,
                        movement.status.to_ascii_lowercase(),
                        humantime::format_duration(Duration::from_secs(age - age % 60)),
                        if late { " (late)" } else { "" }
                    ),
                    alarming: late,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_lines_poll_with_funding_and_the_late_times_are_checked_per_account() {
        let mut account = AccountSettings::new("desk", "KEY-desk-1234", vec![1; 64]);
        assert!(!(WITHDRAWALS.polls)(&account) && !(DEPOSITS.polls)(&account));
        account.options.set("funding", true);
        assert!((WITHDRAWALS.polls)(&account) && (DEPOSITS.polls)(&account));
        assert_eq!(
            late_after(&account, "", Direction::Withdrawal),
            Ok(DEFAULT_LATE_AFTER)
        );
        account.options.set("withdrawal_stuck_after", "4h");
        assert_eq!(
            late_after(&account, "", Direction::Withdrawal),
            Ok(Duration::from_secs(4 * 3600))
        );
        account.options.set("deposit_unconfirmed_after", "5s");
        let settings = crate::config::Settings::with_defaults("http://x", vec![account.clone()]);
        let refused = (OPTIONS.check)(&settings, &account, "account \"desk\"").unwrap_err();
        assert!(
            refused.0.starts_with(
                "account \"desk\": deposit_unconfirmed_after (5s) is below the minimum of 1m"
            ),
            "{}",
            refused.0
        );
    }
}
