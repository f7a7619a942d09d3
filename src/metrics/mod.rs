//! The generic machinery of the exposition: the families collectors register ([`series`]), the
//! exporter's own health ([`health`]), the accounts and endpoints that exist, and the one publisher
//! ([`publish`]). Nothing here knows a Kraken endpoint or its figures: each collector registers and
//! fills its own families (`crate::collectors`).
//!
//! **One render path, publishing proportional to the change.** Every family is rendered by hand,
//! per account: balance families and histograms into a chunk per account (and family), a gauge or
//! counter family into one text in which each account has its range. Everything that changes lives
//! in one [`State`] behind one lock (as mini-redis keeps its `Mutex<State>`). State changes only
//! through [`Metrics::update`], whose closure gets a [`Changes`] handle (the only way to reach the
//! setters); a setter marks the account's part of the family it changed; `update` renders the
//! marked histogram chunks and moves the version on. The first scrape of a newer version renders
//! the marked accounts' lines of each gauge or counter family into the family's one text (that
//! account's, that family's: nothing else; the other accounts' lines are copied) and joins the
//! parts once (references to shared bytes), outside any update, so an update costs what it changed
//! whatever the number of accounts, and no caller can change a value and forget to publish it. Only
//! the process metrics go through the `prometheus` crate's encoder.

mod health;
mod publish;
mod series;

pub use crate::exposition::to_f64;
pub use publish::{Scrape, CONTENT_TYPE, PROCESS_REFRESH};
pub use series::{AccountSeries, Histogram, Kind, RenderedFamilies, Scope};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::Registry;

use crate::sync::lock;
use health::Health;
use publish::Exposition;
use series::{Marked, Slot};

/// The families, the state and the last assembled exposition.
pub struct Metrics {
    process_registry: Registry,
    health: Health,
    state: Mutex<State>,
    /// The state's version, readable without its lock (a scrape compares it with what it holds).
    version: AtomicU64,
    exposition: RwLock<Exposition>,
}

/// What changes, under one lock: the configured accounts, the endpoints each polls, and every
/// family with its chunks.
#[derive(Default)]
struct State {
    accounts: BTreeSet<String>,
    endpoints: BTreeMap<String, Vec<&'static str>>,
    /// Every family, in exposition order.
    slots: Vec<Slot>,
    /// The slot of each family registered by name ([`AccountSeries`]).
    names: BTreeMap<String, usize>,
    /// Chunks changed by the update under way, rendered again when it ends.
    marked: Marked,
    /// Moves on with every change of what is served.
    version: u64,
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
        let process_registry = Registry::new();
        #[cfg(target_os = "linux")]
        process_registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("the process collector is registered once");
        let mut state = State::default();
        let health = Health::register(&mut state);
        let metrics = Self {
            health,
            process_registry,
            state: Mutex::new(state),
            version: AtomicU64::new(0),
            exposition: RwLock::new(Exposition::default()),
        };
        metrics.update(|m| {
            m.init_health();
            m.set_accounts(accounts);
        });
        metrics
    }

    /// Applies `change` and renders what it changed, as one step: the only way to change what is
    /// served.
    pub fn update<R>(&self, change: impl FnOnce(&mut Changes<'_>) -> R) -> R {
        let mut state = lock(&self.state);
        let result = change(&mut Changes {
            metrics: self,
            state: &mut state,
        });
        let marked = std::mem::take(&mut state.marked);
        if !marked.is_empty() {
            for (slot, account) in &marked {
                state.slots[*slot].render(account);
            }
            state.version += 1;
        }
        self.version.store(state.version, Ordering::Release);
        result
    }
}

/// The setters of [`Metrics`], handed out by [`Metrics::update`], which renders once they are done.
pub struct Changes<'a> {
    metrics: &'a Metrics,
    state: &'a mut State,
}

impl Changes<'_> {
    /// Marks the account's chunk of a family to be rendered again when the update ends.
    fn mark(&mut self, slot: usize, account: &str) {
        self.state.marked.insert((slot, account.to_string()));
    }

    /// Makes the configured accounts exactly `accounts`: new ones get their health series
    /// pre-created, removed ones lose every series of every family.
    pub fn set_accounts<S: AsRef<str>>(&mut self, accounts: &[S]) {
        let wanted: BTreeSet<String> = accounts.iter().map(|a| a.as_ref().to_string()).collect();
        let gone: Vec<String> = self.state.accounts.difference(&wanted).cloned().collect();
        for account in &gone {
            self.set_endpoints(account, &[]);
            for slot in &mut self.state.slots {
                slot.remove_account(account);
            }
            self.state.marked.retain(|(_, marked)| marked != account);
            self.state.accounts.remove(account);
            self.state.version += 1;
        }
        for account in wanted {
            if !self.state.accounts.contains(&account) {
                self.add_account_health(&account);
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
            self.add_endpoint_health(account, endpoint);
        }
        for gone in before.iter().filter(|e| !endpoints.contains(e)) {
            self.remove_endpoint_health(account, gone);
            self.clear_endpoint(account, gone, true);
        }
        if endpoints.is_empty() {
            self.state.endpoints.remove(account);
        }
    }

    /// Removes the account's series of every family `endpoint` owns: its data ([`Scope::Data`]), and
    /// with `configured` its configured series too ([`Scope::Configured`]).
    pub fn clear_endpoint(&mut self, account: &str, endpoint: &str, configured: bool) {
        for index in 0..self.state.slots.len() {
            if self.state.slots[index].clear_endpoint(account, endpoint, configured) {
                self.mark(index, account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{render_labels, GaugeFamily};
    use crate::kraken::ErrorReason;
    use std::sync::Arc;
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

    /// The lines of the exposition that start with `prefix`, in order.
    fn lines_of(metrics: &Metrics, prefix: &str) -> Vec<String> {
        let text = metrics.render_text();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect()
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
    fn clearing_an_endpoint_that_owns_only_rendered_rows_publishes_their_removal() {
        let metrics = Metrics::new(&["a"]);
        let (_, rendered, _) = families(&metrics);
        metrics.update(|m| rendered.replace(m, "a", rows("a", &[("r1", 1.0)])));
        assert!(metrics.render_text().contains("test_rows{"));
        metrics.update(|m| m.clear_endpoint("a", "E", false));
        let text = metrics.render_text();
        assert!(!text.contains("test_rows{"), "{text}");
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
    fn the_compressed_text_is_kept_once_and_a_kept_part_is_copied_from_it_into_the_next_join() {
        use std::io::Read;
        let metrics = Metrics::new(&["a", "b"]);
        let (_, rendered, _) = families(&metrics);
        // Enough rows (each its own figure) that an account's member is not a small one.
        let many = |first: f64| -> Vec<(String, f64)> {
            (0..40)
                .map(|i| (format!("r{i}"), first + f64::from(i) * 1.37))
                .collect()
        };
        fn lines(rows: &[(String, f64)]) -> Vec<(&str, f64)> {
            rows.iter()
                .map(|(row, value)| (row.as_str(), *value))
                .collect()
        }
        let (a, b) = (many(1.5), many(2.5));
        metrics.update(|m| {
            rendered.replace(m, "a", rows("a", &lines(&a)));
            rendered.replace(m, "b", rows("b", &lines(&b)));
        });
        // Every large part's member is a slice of the joined buffer, not a copy of its own; a
        // small one (the family's header) is its own copy.
        let inside = |scrape: &Scrape| {
            let joined = scrape.gzip()[0].clone();
            let range = joined.as_ptr() as usize..joined.as_ptr() as usize + joined.len() + 1;
            let (large, small): (Vec<&crate::exposition::Encoded>, Vec<_>) = scrape
                .published
                .iter()
                .filter(|part| !part.is_empty())
                .partition(|part| part.gzip().len() >= publish::SHARED_MEMBER);
            assert!(large.len() >= 2 && !small.is_empty());
            large
                .iter()
                .all(|part| range.contains(&(part.gzip().as_ptr() as usize)))
                && small
                    .iter()
                    .all(|part| !range.contains(&(part.gzip().as_ptr() as usize)))
        };
        let first = metrics.scrape();
        assert!(inside(&first));
        // A new version keeps b's part and renders a's: its join holds both, decoded as the text.
        let a = many(3.5);
        metrics.update(|m| rendered.replace(m, "a", rows("a", &lines(&a))));
        let second = metrics.scrape();
        assert!(!Arc::ptr_eq(&first.published, &second.published));
        let gzip: Vec<u8> = second.gzip().concat();
        assert!(inside(&second));
        let mut decoded = String::new();
        flate2::read::MultiGzDecoder::new(&gzip[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded.as_bytes(), &second.plain().concat()[..]);
        assert!(decoded.contains(r#"test_rows{account="a",row="r0"} 3.5"#));
        assert!(decoded.contains(r#"test_rows{account="b",row="r0"} 2.5"#));
    }

    #[test]
    fn scrapes_share_the_rendered_bytes_and_an_update_renders_only_what_it_changed() {
        let metrics = Metrics::new(&["a", "b"]);
        let first = metrics.scrape();
        let second = metrics.scrape();
        // Same allocations: nothing was rendered or compressed for the second scrape.
        for (a, b) in first.plain().iter().zip(second.plain().iter()) {
            assert_eq!(a.as_ptr(), b.as_ptr());
        }
        assert_eq!(first.gzip()[0].as_ptr(), second.gzip()[0].as_ptr());
        // An update that changes nothing renders nothing.
        metrics.update(|_| {});
        let third = metrics.scrape();
        assert!(Arc::ptr_eq(&first.published, &third.published));
        // A poll of account a renders a's lines again, once, at the next scrape; b's are copied.
        let renders = |name: &str| {
            let state = lock(&metrics.state);
            let slot = state.names[name];
            let Slot::Series(exported) = &state.slots[slot] else {
                panic!("{name} is a series family");
            };
            exported.renders
        };
        let names = [
            "kraken_up",
            "kraken_polls_total",
            "kraken_last_success_timestamp_seconds",
        ];
        let before: Vec<usize> = names.iter().map(|n| renders(n)).collect();
        metrics.update(|m| m.record_poll("a", Duration::from_millis(5), None));
        metrics.update(|m| m.record_poll("a", Duration::from_millis(5), None));
        for (name, before) in names.iter().zip(&before) {
            assert_eq!(
                renders(name),
                *before,
                "{name}: nothing rendered before a scrape"
            );
        }
        let after = metrics.scrape();
        for (name, before) in names.iter().zip(&before) {
            assert_eq!(renders(name), before + 1, "{name}: a's lines only, once");
        }
        assert!(after.text().contains("kraken_polls_total{account=\"a\"} 2"));
        assert!(after.text().contains("kraken_polls_total{account=\"b\"} 0"));
    }

    #[test]
    fn setting_what_is_already_exported_renders_nothing_and_a_real_change_does() {
        let metrics = Metrics::new(&["a"]);
        let (figure, _, _) = families(&metrics);
        let x = |value: f64| vec![(vec!["x".to_string()], value), (vec!["y".to_string()], 2.0)];
        metrics.update(|m| figure.replace(m, "a", &x(1.0)));
        let first = metrics.scrape();
        // The same rows in another order, the same single value, a zero delta, a missing row
        // removed: nothing changed, nothing is rendered, the published version is the same.
        metrics.update(|m| {
            let mut reversed = x(1.0);
            reversed.reverse();
            figure.replace(m, "a", &reversed);
            figure.set(m, "a", vec!["y".to_string()], 2.0);
            figure.add(m, "a", vec!["x".to_string()], 0.0);
            figure.remove(m, "a", &["absent".to_string()]);
            figure.replace(m, "b-not-exported", &[]);
        });
        assert!(Arc::ptr_eq(&first.published, &metrics.scrape().published));
        // The smallest change of a value is a change.
        metrics.update(|m| figure.replace(m, "a", &x(1.0 + f64::EPSILON)));
        let second = metrics.scrape();
        assert!(!Arc::ptr_eq(&first.published, &second.published));
        assert!(second
            .text()
            .contains("test_figure{account=\"a\",kind=\"x\"} 1.0000000000000002"));
    }

    #[test]
    fn the_exposition_is_valid_text_format_with_one_header_per_family() {
        let metrics = Metrics::new(&["a", "b"]);
        let shared_a =
            AccountSeries::register(&metrics, Scope::Data("X"), "test_shared", "S.", &["api"]);
        let shared_b =
            AccountSeries::register(&metrics, Scope::Data("Y"), "test_shared", "S.", &["api"]);
        metrics.update(|m| {
            shared_a.replace(m, "a", &[(vec!["spot".into()], 1.0)]);
            shared_b.replace(m, "a", &[(vec!["futures".into()], 0.0)]);
            m.record_poll("a", Duration::from_millis(5), Some(ErrorReason::Timeout));
        });
        // One owner's replace keeps the other's rows; clearing one endpoint takes its rows only.
        metrics.update(|m| shared_a.replace(m, "a", &[(vec!["spot".into()], 2.0)]));
        let text = metrics.render_text();
        assert_eq!(
            text.matches("# TYPE test_shared gauge").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains(r#"test_shared{account="a",api="futures"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"test_shared{account="a",api="spot"} 2"#),
            "{text}"
        );
        metrics.update(|m| m.clear_endpoint("a", "Y", false));
        let cleared = metrics.scrape();
        let text = cleared.text();
        assert!(!text.contains(r#"api="futures""#), "{text}");
        // Clearing what is already gone changes nothing: the published parts are the same.
        metrics.update(|m| m.clear_endpoint("a", "Y", false));
        assert!(Arc::ptr_eq(&cleared.published, &metrics.scrape().published));
        assert!(
            text.contains(r#"test_shared{account="a",api="spot"} 2"#),
            "{text}"
        );
        assert!(text.contains("# TYPE kraken_poll_duration_seconds histogram"));
        assert!(text.contains(r#"kraken_poll_duration_seconds_bucket{account="a",le="+Inf"} 1"#));
        assert!(text.contains(r#"kraken_poll_duration_seconds_count{account="a"} 1"#));
        assert!(text.contains(r#"kraken_poll_errors_total{account="a",reason="timeout"} 1"#));
        assert!(text.contains("# TYPE kraken_poll_errors_total counter"));
        // Every family's samples follow its header, and no family appears twice.
        let mut seen = std::collections::BTreeSet::new();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(seen.insert(name.to_string()), "{name} twice");
        }
    }

    #[test]
    fn two_owners_share_a_family_each_keeping_its_rows_and_lines_follow_the_label_names() {
        let metrics = Metrics::new(&["a"]);
        // Label values are passed in registration order; lines name them in the order of the names.
        let register =
            |scope| AccountSeries::register(&metrics, scope, "test_key", "K.", &["quote", "asset"]);
        let (spot, futures) = (register(Scope::Data("S")), register(Scope::Data("F")));
        let labels = |quote: &str, asset: &str| vec![quote.to_string(), asset.to_string()];
        metrics.update(|m| {
            spot.replace(
                m,
                "a",
                &[(labels("USD", "XBT"), 2.0), (labels("EUR", "ETH"), 1.0)],
            );
            futures.set(m, "a", labels("USD", "a\"b"), 3.0);
            futures.add(m, "a", labels("USD", "a\"b"), 0.5);
            futures.add(m, "a", labels("USD", "DOT"), 4.0);
        });
        let lines = lines_of(&metrics, "test_key{");
        assert_eq!(
            lines,
            [
                r#"test_key{account="a",asset="DOT",quote="USD"} 4"#,
                r#"test_key{account="a",asset="ETH",quote="EUR"} 1"#,
                r#"test_key{account="a",asset="XBT",quote="USD"} 2"#,
                r#"test_key{account="a",asset="a\"b",quote="USD"} 3.5"#,
            ]
        );
        metrics.update(|m| {
            assert_eq!(futures.value(m, "a", &labels("USD", "a\"b")), Some(3.5));
            assert_eq!(spot.value(m, "a", &labels("USD", "a\"b")), None);
            // One owner's replace and remove leave the other's rows.
            spot.replace(m, "a", &[]);
            futures.remove(m, "a", &labels("USD", "DOT"));
        });
        let lines = lines_of(&metrics, "test_key{");
        assert_eq!(
            lines,
            [r#"test_key{account="a",asset="a\"b",quote="USD"} 3.5"#]
        );
    }

    #[test]
    fn a_scrape_splices_changed_accounts_between_the_kept_lines_of_the_others() {
        let metrics = Metrics::new(&["a", "b", "c", "d", "e"]);
        let (figure, _, _) = families(&metrics);
        let row = |value: f64| [(vec!["x".to_string()], value)];
        let lines = || lines_of(&metrics, "test_figure{");
        metrics.update(|m| {
            for (account, value) in [("b", 2.0), ("c", 3.0), ("e", 5.0)] {
                figure.replace(m, account, &row(value));
            }
        });
        assert_eq!(lines().len(), 3);
        // a and d appear before and between kept accounts, c changes, e goes; b is copied.
        metrics.update(|m| {
            figure.replace(m, "a", &row(1.0));
            figure.replace(m, "c", &row(30.0));
            figure.replace(m, "d", &row(4.0));
            figure.clear(m, "e");
        });
        let line = |account: &str, value: &str| {
            format!(r#"test_figure{{account="{account}",kind="x"}} {value}"#)
        };
        assert_eq!(
            lines(),
            [
                line("a", "1"),
                line("b", "2"),
                line("c", "30"),
                line("d", "4")
            ]
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
