//! The generic machinery of the exposition: the registry, the two kinds of family collectors register
//! ([`series`]), the exporter's own health ([`health`]), the accounts and endpoints that exist, and
//! the one publisher ([`publish`]). Nothing here knows a Kraken endpoint or its figures: each
//! collector registers and fills its own families (`crate::collectors`).
//!
//! **Publishing has one owner.** Everything that changes lives in one [`State`] behind one lock (as
//! mini-redis keeps its `Mutex<State>`). State changes only through [`Metrics::update`], whose closure
//! gets a [`Changes`] handle (the only way to reach the setters); when the closure returns, `update`
//! renders the registry, joins it with the hand-rendered chunks (plain and gzip) and stores what
//! `/metrics` serves, still under the lock, so a render never overwrites a newer one and no caller
//! can change a value and forget to publish it.

mod health;
mod publish;
mod series;

pub use crate::exposition::to_f64;
pub use publish::{Scrape, CONTENT_TYPE, PROCESS_REFRESH};
pub use series::{AccountSeries, RenderedFamilies, Scope};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

use crate::sync::lock;
use health::Health;
use publish::Exposition;

/// The registry, the families, the state and the last rendered exposition.
pub struct Metrics {
    registry: Registry,
    process_registry: Registry,
    health: Health,
    state: Mutex<State>,
    exposition: RwLock<Exposition>,
}

/// What changes, under one lock: the configured accounts, the endpoints each polls, and the
/// bookkeeping of every registered family.
#[derive(Default)]
struct State {
    accounts: BTreeSet<String>,
    endpoints: BTreeMap<String, Vec<&'static str>>,
    series: Vec<series::Exported>,
    rendered: Vec<series::Rendered>,
    /// Every family registered through [`Metrics::gauge_vec`], by name: a family two endpoints
    /// share (the key's, by `api`) is registered once and handed to both.
    gauges: BTreeMap<String, GaugeVec>,
}

pub(crate) fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let gauge = GaugeVec::new(Opts::new(name, help), labels)
        .expect("metric names, help and labels are static and valid");
    registry
        .register(Box::new(gauge.clone()))
        .expect("each metric family is registered once");
    gauge
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("metric names, help and labels are static and valid");
    registry
        .register(Box::new(counter.clone()))
        .expect("each metric family is registered once");
    counter
}

pub(crate) fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Metrics {
    /// Creates the health families and pre-creates the per-account series (up = 0, error counters
    /// at 0), so `rate()` and `absent()` work from the first scrape. Collectors register their own
    /// families next ([`AccountSeries::register`], [`RenderedFamilies::register`]).
    pub fn new<S: AsRef<str>>(accounts: &[S]) -> Self {
        let registry = Registry::new();
        let process_registry = Registry::new();
        #[cfg(target_os = "linux")]
        process_registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("the process collector is registered once");
        let metrics = Self {
            health: Health::register(&registry),
            registry,
            process_registry,
            state: Mutex::new(State::default()),
            exposition: RwLock::new(Exposition::default()),
        };
        metrics.update(|m| m.set_accounts(accounts));
        metrics
    }

    /// Registers a plain gauge family on the registry, or hands out the one registered under
    /// `name` before (then with the same help and labels).
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        let mut state = lock(&self.state);
        state
            .gauges
            .entry(name.to_string())
            .or_insert_with(|| gauge_vec(&self.registry, name, help, labels))
            .clone()
    }

    /// Applies `change` and publishes the result, as one step: the only way to change what is served.
    pub fn update<R>(&self, change: impl FnOnce(&mut Changes<'_>) -> R) -> R {
        let mut state = lock(&self.state);
        let result = change(&mut Changes {
            metrics: self,
            state: &mut state,
        });
        self.publish(&state);
        result
    }
}

/// The setters of [`Metrics`], handed out by [`Metrics::update`], which publishes once they are done.
pub struct Changes<'a> {
    metrics: &'a Metrics,
    state: &'a mut State,
}

impl Changes<'_> {
    /// Makes the configured accounts exactly `accounts`: new ones get their health series
    /// pre-created, removed ones lose every series of every family.
    pub fn set_accounts<S: AsRef<str>>(&mut self, accounts: &[S]) {
        let wanted: BTreeSet<String> = accounts.iter().map(|a| a.as_ref().to_string()).collect();
        let gone: Vec<String> = self.state.accounts.difference(&wanted).cloned().collect();
        for account in &gone {
            self.set_endpoints(account, &[]);
            for exported in &mut self.state.series {
                if exported.scope != Scope::Global {
                    exported.clear(account);
                }
            }
            for rendered in &mut self.state.rendered {
                rendered.chunks.remove(account);
            }
            self.metrics.health.remove_account(account);
            self.state.accounts.remove(account);
        }
        for account in wanted {
            if !self.state.accounts.contains(&account) {
                self.metrics.health.add_account(&account);
                self.state.accounts.insert(account);
            }
        }
    }

    /// Declares the endpoints an account polls: their `kraken_endpoint_up` (0 until the first
    /// answer) and error counters (every reason at 0) exist from now on; an endpoint no longer
    /// polled loses its health series and every series of the families it owns ([`Scope`]).
    pub fn set_endpoints(&mut self, account: &str, endpoints: &[&'static str]) {
        let before = self
            .state
            .endpoints
            .insert(account.to_string(), endpoints.to_vec())
            .unwrap_or_default();
        for endpoint in endpoints {
            self.metrics.health.add_endpoint(account, endpoint);
        }
        for gone in before.iter().filter(|e| !endpoints.contains(e)) {
            self.metrics.health.remove_endpoint(account, gone);
            self.clear_endpoint(account, gone, true);
        }
        if endpoints.is_empty() {
            self.state.endpoints.remove(account);
        }
    }

    /// Removes the account's series of every family `endpoint` owns: its data ([`Scope::Data`]), and
    /// with `configured` its configured series too ([`Scope::Configured`]).
    pub fn clear_endpoint(&mut self, account: &str, endpoint: &str, configured: bool) {
        for exported in &mut self.state.series {
            if exported.scope.cleared_by(endpoint, configured) {
                exported.clear(account);
            }
        }
        for rendered in &mut self.state.rendered {
            if rendered.scope.cleared_by(endpoint, configured) {
                rendered.chunks.remove(account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{render_labels, GaugeFamily};
    use crate::kraken::ErrorReason;
    use std::time::Duration;

    const ROWS: GaugeFamily = GaugeFamily {
        name: "test_rows",
        help: "Rows.",
    };

    /// A registry family and a rendered family, both owned by endpoint `E`, and a configured one.
    fn families(metrics: &Metrics) -> (AccountSeries, RenderedFamilies, AccountSeries) {
        (
            AccountSeries::register(
                metrics,
                Scope::Data("E"),
                "test_figure",
                "Figure.",
                &["kind"],
            ),
            RenderedFamilies::register(metrics, Scope::Data("E"), &[ROWS]),
            AccountSeries::register(
                metrics,
                Scope::Configured("E"),
                "test_minimum",
                "Minimum.",
                &[],
            ),
        )
    }

    fn rows(account: &str, values: &[(&str, f64)]) -> Vec<crate::exposition::Encoded> {
        let rendered: Vec<(String, f64)> = values
            .iter()
            .map(|(row, v)| (render_labels(&[("account", account), ("row", row)]), *v))
            .collect();
        vec![ROWS.render(rendered.iter().map(|(l, v)| (l.as_str(), *v)))]
    }

    #[test]
    fn replacing_removes_vanished_series_only_for_that_account() {
        let metrics = Metrics::new(&["a", "b"]);
        let (figure, rendered, _) = families(&metrics);
        let two = |kind: &str| vec![(vec!["x".to_string()], 1.0), (vec![kind.to_string()], 2.0)];
        metrics.update(|m| {
            figure.replace(m, "a", &two("y"));
            figure.replace(m, "b", &two("y"));
            rendered.replace(m, "a", rows("a", &[("r1", 1.0), ("r2", 2.0)]));
            rendered.replace(m, "b", rows("b", &[("r1", 1.0)]));
        });
        metrics.update(|m| {
            figure.replace(m, "a", &two("z"));
            rendered.replace(m, "a", rows("a", &[("r2", 3.0)]));
        });
        let text = metrics.render_text();
        assert!(
            text.contains(r#"test_figure{account="a",kind="z"} 2"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"test_figure{account="a",kind="y"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"test_figure{account="b",kind="y"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"test_rows{account="a",row="r2"} 3"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"test_rows{account="a",row="r1"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"test_rows{account="b",row="r1"} 1"#),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE test_rows gauge").count(), 1);
    }

    #[test]
    fn stale_data_goes_thresholds_stay_and_an_endpoint_turned_off_takes_both() {
        let metrics = Metrics::new(&["a"]);
        let (figure, rendered, minimum) = families(&metrics);
        let fill = |m: &mut Changes<'_>| {
            figure.replace(m, "a", &[(vec!["x".to_string()], 1.0)]);
            rendered.replace(m, "a", rows("a", &[("r1", 1.0)]));
            minimum.replace(m, "a", &[(vec![], 5.0)]);
        };
        metrics.update(|m| {
            m.set_endpoints("a", &["E"]);
            fill(m);
            m.clear_endpoint("a", "E", false);
        });
        let text = metrics.render_text();
        assert!(
            !text.contains("test_figure{") && !text.contains("test_rows{"),
            "{text}"
        );
        assert!(text.contains(r#"test_minimum{account="a"} 5"#), "{text}");
        assert!(
            text.contains(r#"kraken_endpoint_up{account="a",endpoint="E"} 0"#),
            "{text}"
        );
        metrics.update(|m| {
            fill(m);
            m.set_endpoints("a", &[]);
        });
        let text = metrics.render_text();
        for gone in [
            "test_figure{",
            "test_rows{",
            "test_minimum{",
            "kraken_endpoint_up{",
        ] {
            assert!(!text.contains(gone), "{gone}: {text}");
        }
    }

    #[test]
    fn a_removed_account_loses_every_series_and_others_keep_theirs() {
        let metrics = Metrics::new(&["a", "b"]);
        let (figure, rendered, minimum) = families(&metrics);
        metrics.update(|m| {
            for account in ["a", "b"] {
                m.set_endpoints(account, &["E"]);
                figure.replace(m, account, &[(vec!["x".to_string()], 1.0)]);
                rendered.replace(m, account, rows(account, &[("r1", 1.0)]));
                minimum.replace(m, account, &[(vec![], 5.0)]);
                m.record_poll(account, Duration::from_millis(5), None);
            }
            m.set_accounts(&["b"]);
        });
        let text = metrics.render_text();
        assert!(!text.contains(r#"account="a""#), "{text}");
        for kept in [
            "test_figure{",
            "test_rows{",
            "test_minimum{",
            "kraken_up{",
            "kraken_endpoint_up{",
        ] {
            assert!(
                text.contains(&format!(r#"{kept}account="b""#)),
                "{kept}: {text}"
            );
        }
    }

    #[test]
    fn concurrent_updates_never_leave_an_older_render_published() {
        // Each update renders and stores under one lock: the last render stored is the newest state.
        let accounts: Vec<String> = (0..8).map(|i| format!("a{i}")).collect();
        for _ in 0..50 {
            let metrics = Metrics::new(&accounts);
            std::thread::scope(|scope| {
                for account in &accounts {
                    let metrics = &metrics;
                    scope.spawn(move || {
                        metrics.update(|m| m.record_poll(account, Duration::from_millis(5), None))
                    });
                }
            });
            let text = metrics.render_text();
            for account in &accounts {
                assert!(
                    text.contains(&format!(r#"kraken_up{{account="{account}"}} 1"#)),
                    "{account}: {text}"
                );
            }
        }
    }

    #[test]
    fn gzip_body_decodes_to_the_plain_body() {
        use std::io::Read;
        let metrics = Metrics::new(&["a"]);
        let (_, rendered, _) = families(&metrics);
        metrics.update(|m| {
            rendered.replace(m, "a", rows("a", &[("r1", 1.5)]));
            m.record_poll("a", Duration::from_millis(5), None);
        });
        let body = metrics.scrape();
        let gzip: Vec<u8> = body.gzip().concat();
        let plain: Vec<u8> = body.plain().concat();
        let mut decoded = String::new();
        flate2::read::MultiGzDecoder::new(&gzip[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded.as_bytes(), &plain[..]);
        assert!(decoded.contains(r#"kraken_up{account="a"} 1"#));
        assert!(decoded.contains(r#"test_rows{account="a",row="r1"} 1.5"#));
        assert!(gzip.len() < plain.len());
    }

    #[test]
    fn scrapes_share_the_rendered_bytes_until_something_changes() {
        let metrics = Metrics::new(&["a"]);
        let first = metrics.scrape();
        let second = metrics.scrape();
        // Same allocations: nothing was rendered or compressed for the second scrape.
        for (a, b) in first.plain().iter().zip(second.plain().iter()) {
            assert_eq!(a.as_ptr(), b.as_ptr());
        }
        assert_eq!(first.gzip()[0].as_ptr(), second.gzip()[0].as_ptr());
        metrics.update(|_| {});
        assert_ne!(
            metrics.scrape().plain()[0].as_ptr(),
            first.plain()[0].as_ptr()
        );
    }

    #[test]
    fn a_global_family_is_replaced_as_a_whole_and_has_no_account_label() {
        let metrics = Metrics::new(&["a"]);
        let prices =
            AccountSeries::register(&metrics, Scope::Global, "test_price", "P.", &["asset"]);
        metrics.update(|m| {
            prices.replace(
                m,
                "",
                &[(vec!["XBT".into()], 95000.1), (vec!["DOT".into()], 7.5)],
            );
        });
        metrics.update(|m| {
            prices.replace(m, "", &[(vec!["XBT".into()], 96000.0)]);
            m.set_accounts(&[] as &[&str]);
        });
        let text = metrics.render_text();
        assert!(text.contains(r#"test_price{asset="XBT"} 96000"#), "{text}");
        assert!(!text.contains(r#"asset="DOT""#), "{text}");
    }

    #[test]
    fn every_account_starts_with_up_zero_and_zeroed_error_counters() {
        let text = Metrics::new(&["a"]).render_text();
        assert!(text.contains(r#"kraken_up{account="a"} 0"#));
        for reason in ErrorReason::ALL {
            let series = format!(r#"kraken_poll_errors_total{{account="a",reason="{reason}"}} 0"#);
            assert!(text.contains(&series), "{series}");
        }
        assert!(text.contains("kraken_exporter_build_info{"));
    }

    #[test]
    fn a_poll_of_under_a_millisecond_lands_in_the_lowest_bucket() {
        let metrics = Metrics::new(&["a"]);
        metrics.update(|m| m.record_poll("a", Duration::from_micros(800), None));
        let text = metrics.render_text();
        assert!(
            text.contains(r#"kraken_poll_duration_seconds_bucket{account="a",le="0.001"} 1"#),
            "{text}"
        );
    }
}
