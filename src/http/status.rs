//! What the landing page shows about each account (as blackbox_exporter's page does for its probes):
//! the threshold closest to paging (its figure against its minimum, red when below); per endpoint,
//! up or down, the last success, the last error with its reason and hint; the next attempt; and the
//! recent poll events of all accounts (each keeps its last [`EVENTS_KEPT`]; the page shows the newest
//! [`EVENTS_SHOWN`] of them). The pollers write it, the server renders it as
//! plain HTML, every text escaped. It holds what the log holds and nothing more: error messages are
//! already scrubbed of the request's secrets, and no key is ever recorded.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::collectors::{Comparison, Note};
use crate::exposition::Encoded;
use crate::kraken::PollError;
use crate::sync::lock;

/// How many poll events each account keeps.
pub const EVENTS_KEPT: usize = 12;

/// How many of all accounts' poll events the page shows, newest first: every event of ten accounts.
pub const EVENTS_SHOWN: usize = 10 * EVENTS_KEPT;

/// The status of every configured account.
#[derive(Default)]
pub struct Status {
    accounts: Mutex<BTreeMap<String, AccountStatus>>,
    /// The tables last rendered and when: [`Status::page`] renders at most once per
    /// [`RENDER_EVERY`], however many browsers reload the page.
    rendered: tokio::sync::Mutex<Option<(std::time::Instant, Encoded)>>,
}

/// How old the rendered tables may be before a reader renders them again.
pub const RENDER_EVERY: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Status")
            .field("accounts", &lock(&self.accounts).len())
            .finish()
    }
}

#[derive(Default, Clone)]
struct AccountStatus {
    /// In polling order.
    endpoints: Vec<EndpointStatus>,
    next_attempt: Option<SystemTime>,
    events: VecDeque<Event>,
    /// Each endpoint's minimums with their figures, as of its last success.
    compared: BTreeMap<&'static str, Vec<Comparison>>,
    /// What each endpoint's last success says an operator should read (a key's permissions).
    notes: BTreeMap<&'static str, Vec<Note>>,
}

#[derive(Clone)]
struct EndpointStatus {
    endpoint: &'static str,
    /// `None` before the first answer.
    up: Option<bool>,
    /// Kraken answered that it does not offer the endpoint to this account.
    not_offered: bool,
    last_success: Option<SystemTime>,
    last_error: Option<Failure>,
}

#[derive(Clone)]
struct Failure {
    at: SystemTime,
    reason: &'static str,
    message: String,
    hint: String,
}

#[derive(Clone)]
struct Event {
    at: SystemTime,
    endpoint: &'static str,
    /// `Ok(items)` or the failure (boxed: most events are successes, and a thousand accounts keep
    /// twelve events each).
    outcome: Result<usize, Box<Failure>>,
    took: Duration,
}

impl Status {
    /// Keeps the accounts of the configuration with these endpoints (what an account that stays
    /// already knew stays); forgets the others.
    pub fn configure(&self, accounts: &[(&str, Vec<&'static str>)]) {
        let mut all = lock(&self.accounts);
        let mut kept = BTreeMap::new();
        for (account, endpoints) in accounts {
            let mut old = all.remove(*account).unwrap_or_default();
            let endpoints = endpoints
                .iter()
                .map(|endpoint| {
                    old.endpoints
                        .iter()
                        .position(|e| e.endpoint == *endpoint)
                        .map(|at| old.endpoints.swap_remove(at))
                        .unwrap_or(EndpointStatus {
                            endpoint,
                            up: None,
                            not_offered: false,
                            last_success: None,
                            last_error: None,
                        })
                })
                .collect();
            old.endpoints = endpoints;
            // The minimums may have changed: the next success of each endpoint tells.
            old.compared.clear();
            old.notes
                .retain(|endpoint, _| old.endpoints.iter().any(|e| e.endpoint == *endpoint));
            kept.insert(account.to_string(), old);
        }
        *all = kept;
    }

    /// A successful call of `endpoint` that answered `items` rows.
    pub fn succeeded(&self, account: &str, endpoint: &'static str, items: usize, took: Duration) {
        let now = SystemTime::now();
        self.record(account, endpoint, took, Ok(items), |status| {
            status.up = Some(true);
            status.not_offered = false;
            status.last_success = Some(now);
        });
    }

    /// A failed call of `endpoint`, with the hint its log line gave.
    pub fn failed(
        &self,
        account: &str,
        endpoint: &'static str,
        err: &PollError,
        hint: &str,
        took: Duration,
    ) {
        let failure = Failure {
            at: SystemTime::now(),
            reason: err.reason.as_str(),
            message: err.message.clone(),
            hint: hint.to_string(),
        };
        let last = failure.clone();
        self.record(account, endpoint, took, Err(Box::new(failure)), |status| {
            status.up = Some(false);
            status.last_error = Some(last);
        });
    }

    /// The minimums of `endpoint` with the figures its last successful call compared them with.
    pub fn compared(&self, account: &str, endpoint: &'static str, comparisons: Vec<Comparison>) {
        if let Some(status) = lock(&self.accounts).get_mut(account) {
            status.compared.insert(endpoint, comparisons);
        }
    }

    /// What the last success of `endpoint` says an operator should read.
    pub fn noted(&self, account: &str, endpoint: &'static str, notes: Vec<Note>) {
        if let Some(status) = lock(&self.accounts).get_mut(account) {
            status.notes.insert(endpoint, notes);
        }
    }

    /// Kraken does not offer `endpoint` to the account (not a failure).
    pub fn not_offered(&self, account: &str, endpoint: &'static str, err: &PollError) {
        let failure = Failure {
            at: SystemTime::now(),
            reason: err.reason.as_str(),
            message: err.message.clone(),
            hint: err.reason.hint().to_string(),
        };
        self.record(
            account,
            endpoint,
            Duration::ZERO,
            Err(Box::new(failure)),
            |status| {
                status.up = None;
                status.not_offered = true;
            },
        );
        if let Some(status) = lock(&self.accounts).get_mut(account) {
            status.notes.remove(endpoint);
        }
    }

    /// Every account's notes, in account and endpoint order.
    pub fn notes(&self) -> Vec<(String, Note)> {
        lock(&self.accounts)
            .iter()
            .flat_map(|(account, status)| {
                status
                    .notes
                    .values()
                    .flatten()
                    .map(|note| (account.clone(), note.clone()))
            })
            .collect()
    }

    /// The account's next poll is due in `after`.
    pub fn scheduled(&self, account: &str, after: Duration) {
        if let Some(status) = lock(&self.accounts).get_mut(account) {
            status.next_attempt = Some(SystemTime::now() + after);
        }
    }

    fn record(
        &self,
        account: &str,
        endpoint: &'static str,
        took: Duration,
        outcome: Result<usize, Box<Failure>>,
        update: impl FnOnce(&mut EndpointStatus),
    ) {
        let mut all = lock(&self.accounts);
        let Some(status) = all.get_mut(account) else {
            return;
        };
        if let Some(endpoint_status) = status.endpoints.iter_mut().find(|e| e.endpoint == endpoint)
        {
            update(endpoint_status);
        }
        if status.events.len() == EVENTS_KEPT {
            status.events.pop_back();
        } else if status.events.capacity() == 0 {
            // Room for exactly the events kept, not the next power of two growth would give.
            status.events.reserve_exact(EVENTS_KEPT);
        }
        status.events.push_front(Event {
            at: SystemTime::now(),
            endpoint,
            outcome,
            took,
        });
    }

    /// The landing page, its tables rendered at most once per [`RENDER_EVERY`] whoever asks (one
    /// reader renders, on a blocking thread, while the others wait for its page) between `head`
    /// and `tail` into the whole page, which every reader within the second shares: browsers
    /// reloading the page of a thousand accounts (megabytes) cost one render a second into one
    /// buffer sized by the last page, no copy per reader, and never hold up the pollers or a scrape.
    /// It is compressed in the same step (browsers ask for gzip: a thousand accounts' page is
    /// 1.3 MB of HTML, 26 KB compressed).
    pub async fn page(self: &Arc<Self>, head: String, tail: &'static str) -> Encoded {
        let mut rendered = self.rendered.lock().await;
        if let Some((at, page)) = rendered.as_ref() {
            if at.elapsed() < RENDER_EVERY {
                return page.clone();
            }
        }
        let last = rendered.as_ref().map_or(0, |(_, page)| page.plain().len());
        let status = Arc::clone(self);
        let page = tokio::task::spawn_blocking(move || {
            let mut html = String::with_capacity(last + last / 8);
            html.push_str(&head);
            status.render_html_into(&mut html);
            html.push_str(tail);
            let page = Encoded::of(html);
            page.gzip();
            crate::allocator::give_back();
            page
        })
        .await
        .unwrap_or_default();
        *rendered = Some((std::time::Instant::now(), page.clone()));
        page
    }

    /// The tables as a text of their own (tests).
    #[cfg(test)]
    pub fn render_html(&self) -> String {
        let mut html = String::new();
        self.render_html_into(&mut html);
        html
    }

    /// The HTML tables of the landing page: one row per account and endpoint, then the recent
    /// polls of all accounts, newest first, appended to `html`. Renders from a copy, so the pollers wait
    /// only for the copy.
    pub fn render_html_into(&self, html: &mut String) {
        let all = lock(&self.accounts).clone();
        let now = SystemTime::now();
        html.push_str(&render_thresholds(&all));
        html.push_str(&render_notes(&all));
        html.push_str(
            "<h2>Accounts</h2>\n<table id=\"status\">\n<tr><th>Account</th><th>Endpoint</th><th>State</th><th>Last success</th><th>Last error</th><th>Hint</th><th>Next attempt</th></tr>\n",
        );
        for (account, status) in all.iter() {
            for endpoint in &status.endpoints {
                let (class, state) = match endpoint.up {
                    _ if endpoint.not_offered => ("waiting", "NOT OFFERED"),
                    Some(true) => ("up", "UP"),
                    Some(false) => ("down", "DOWN"),
                    None => ("waiting", "waiting"),
                };
                let (error, hint) = endpoint.last_error.as_ref().map_or(
                    (String::from("-"), String::from("-")),
                    |failure| {
                        (
                            format!(
                                "{} <code>{}</code>: {}",
                                ago(failure.at, now),
                                escape(failure.reason),
                                escape(&failure.message)
                            ),
                            escape(&failure.hint),
                        )
                    },
                );
                let _ = writeln!(
                    html,
                    "<tr class=\"{class}\"><td>{}</td><td>{}</td><td class=\"state\">{state}</td><td>{}</td><td>{error}</td><td class=\"hint\">{hint}</td><td>{}</td></tr>",
                    escape(account),
                    escape(endpoint.endpoint),
                    endpoint.last_success.map_or_else(|| "never".to_string(), |at| ago(at, now)),
                    status.next_attempt.map_or_else(|| "-".to_string(), |at| until(at, now)),
                );
            }
        }
        html.push_str("</table>\n");
        render_events(&all, now, html);
    }
}

/// The newest [`EVENTS_SHOWN`] polls of all accounts, newest first, as one table (each account
/// keeps its last [`EVENTS_KEPT`]): a handful of accounts show every poll they keep, a thousand
/// the last second or so of polling instead of twelve thousand rows (megabytes a browser reloads
/// every ten seconds; each failing endpoint's last error stays in the table above).
fn render_events(all: &BTreeMap<String, AccountStatus>, now: SystemTime, html: &mut String) {
    let mut events: Vec<(&str, &Event)> = all
        .iter()
        .flat_map(|(account, status)| status.events.iter().map(move |e| (account.as_str(), e)))
        .collect();
    let newest_first = |a: &(&str, &Event), b: &(&str, &Event)| b.1.at.cmp(&a.1.at);
    if events.len() > EVENTS_SHOWN {
        events.select_nth_unstable_by(EVENTS_SHOWN - 1, newest_first);
        events.truncate(EVENTS_SHOWN);
    }
    events.sort_by(newest_first);
    html.push_str(
        "<h2>Recent polls</h2>\n<table id=\"events\">\n<tr><th>When</th><th>Account</th><th>Endpoint</th><th>Outcome</th><th>Took</th></tr>\n",
    );
    if events.is_empty() {
        html.push_str("<tr><td colspan=\"5\">no poll yet</td></tr>\n");
    }
    for (account, event) in events {
        let outcome = match &event.outcome {
            Ok(items) => format!("ok, {items} rows"),
            Err(failure) => format!(
                "<code>{}</code>: {}",
                escape(failure.reason),
                escape(&failure.message)
            ),
        };
        let _ = writeln!(
            html,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{outcome}</td><td>{} ms</td></tr>",
            if event.outcome.is_ok() { "up" } else { "down" },
            ago(event.at, now),
            escape(account),
            escape(event.endpoint),
            event.took.as_millis()
        );
    }
    html.push_str("</table>\n");
}

/// The table of each account's threshold closest to paging: the one with the least headroom (its
/// figure over its minimum), red when below; how many of its minimums are below.
fn render_thresholds(all: &BTreeMap<String, AccountStatus>) -> String {
    let mut html = String::from(
        "<h2>Thresholds</h2>\n<table id=\"thresholds\">\n<tr><th>Account</th><th>Closest to its minimum</th><th>Figure</th><th>Minimum</th><th>Below</th></tr>\n",
    );
    for (account, status) in all {
        let compared: Vec<&Comparison> = status.compared.values().flatten().collect();
        let below = compared.iter().filter(|c| c.below()).count();
        // Below first, then the least headroom; a minimum of 0 has all the room there is.
        let closest = compared.iter().min_by(|a, b| {
            b.below()
                .cmp(&a.below())
                .then_with(|| match (a.headroom(), b.headroom()) {
                    (Some(a), Some(b)) => a.cmp(&b),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                })
        });
        let _ = match closest {
            Some(closest) => writeln!(
                html,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td class=\"figure\">{}</td><td>{}</td><td>{below} of {}</td></tr>",
                if closest.below() { "below" } else { "above" },
                escape(account),
                escape(&closest.what),
                closest.figure.normalize(),
                closest.minimum.normalize(),
                compared.len(),
            ),
            None => writeln!(
                html,
                "<tr class=\"none\"><td>{}</td><td colspan=\"4\">no minimum with a figure yet (none configured, or not polled yet)</td></tr>",
                escape(account)
            ),
        };
    }
    html.push_str("</table>\n");
    html
}

/// The table of what each account's endpoints say an operator should read (its keys' permissions):
/// red where a note is alarming (a key that can move funds, a withdrawal late).
fn render_notes(all: &BTreeMap<String, AccountStatus>) -> String {
    let mut html = String::from(
        "<h2>Keys and money in flight</h2>\n<table id=\"keys\">\n<tr><th>Account</th><th>What Kraken says of the keys, and the withdrawals and deposits on their way</th></tr>\n",
    );
    let mut any = false;
    for (account, status) in all {
        for note in status.notes.values().flatten() {
            any = true;
            let _ = writeln!(
                html,
                "<tr class=\"{}\"><td>{}</td><td>{}</td></tr>",
                if note.alarming { "below" } else { "above" },
                escape(account),
                escape(&note.text)
            );
        }
    }
    if !any {
        html.push_str("<tr class=\"none\"><td colspan=\"2\">no answer yet (key_info off, or not asked yet)</td></tr>\n");
    }
    html.push_str("</table>\n");
    html
}

/// `2026-12-01T10:00:00Z (12 s ago)`.
fn ago(at: SystemTime, now: SystemTime) -> String {
    let seconds = now.duration_since(at).unwrap_or_default().as_secs();
    format!(
        "{} ({seconds} s ago)",
        humantime::format_rfc3339_seconds(at)
    )
}

/// `2026-12-01T10:00:30Z (in 18 s)`.
fn until(at: SystemTime, now: SystemTime) -> String {
    let seconds = at.duration_since(now).unwrap_or_default().as_secs();
    format!("{} (in {seconds} s)", humantime::format_rfc3339_seconds(at))
}

/// `text` safe inside HTML elements and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kraken::ErrorReason;

    #[tokio::test]
    async fn readers_within_a_second_share_one_render_and_a_later_one_sees_what_changed() {
        let status = Arc::new(Status::default());
        status.configure(&[("desk", vec!["BalanceEx"])]);
        let page = || status.page("<body>".to_string(), "</body>");
        let first = page().await;
        status.succeeded("desk", "BalanceEx", 3, Duration::ZERO);
        let second = page().await;
        // The same bytes, not a copy, plain and compressed.
        assert_eq!(first.plain().as_ptr(), second.plain().as_ptr());
        assert_eq!(first.gzip().as_ptr(), second.gzip().as_ptr());
        let text = |page: &Encoded| String::from_utf8(page.plain().to_vec()).unwrap();
        assert!(text(&first).starts_with("<body>"), "{}", text(&first));
        assert!(!text(&second).contains("ok, 3 rows"), "{}", text(&second));
        tokio::time::sleep(RENDER_EVERY + Duration::from_millis(20)).await;
        let third = page().await;
        assert!(text(&third).contains("ok, 3 rows"), "{}", text(&third));
    }

    #[test]
    fn a_failing_account_shows_its_reason_hint_and_events_escaped() {
        let status = Status::default();
        status.configure(&[
            ("main", vec!["BalanceEx", "TradeBalance"]),
            ("b<script>", vec!["BalanceEx"]),
        ]);
        status.succeeded("main", "BalanceEx", 12, Duration::from_millis(3));
        let err = PollError::new(
            ErrorReason::InvalidSignature,
            "Kraken answered EAPI:Invalid signature <b>",
        );
        status.failed(
            "main",
            "TradeBalance",
            &err,
            "copy the private key again",
            Duration::from_millis(4),
        );
        status.scheduled("main", Duration::from_secs(30));
        let html = status.render_html();
        assert!(
            html.contains("<td>main</td><td>TradeBalance</td><td class=\"state\">DOWN</td>"),
            "{html}"
        );
        assert!(
            html.contains(
                "<code>invalid_signature</code>: Kraken answered EAPI:Invalid signature &lt;b&gt;"
            ),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"hint\">copy the private key again</td>"),
            "{html}"
        );
        assert!(html.contains("ok, 12 rows"), "{html}");
        assert!(
            html.contains("(in 29 s)") || html.contains("(in 30 s)"),
            "{html}"
        );
        // Names are escaped; an account never polled is waiting.
        assert!(
            html.contains("b&lt;script&gt;") && !html.contains("<script>"),
            "{html}"
        );
        assert!(html.contains("<td class=\"state\">waiting</td>"), "{html}");
        // A reload keeps what an account that stays knew, and forgets the rest.
        status.configure(&[("main", vec!["BalanceEx"])]);
        let html = status.render_html();
        assert!(
            html.contains("ok, 12 rows") && !html.contains("b&lt;script"),
            "{html}"
        );
        assert!(
            !html.contains("<td>main</td><td>TradeBalance</td><td class=\"state\">"),
            "{html}"
        );
    }

    #[test]
    fn the_threshold_closest_to_paging_is_shown_red_when_below() {
        let status = Status::default();
        status.configure(&[
            ("low", vec!["BalanceEx"]),
            ("fine", vec!["BalanceEx"]),
            ("none", vec!["BalanceEx"]),
        ]);
        let comparison = |what: &str, figure: &str, minimum: &str| Comparison {
            what: what.to_string(),
            figure: figure.parse().unwrap(),
            minimum: minimum.parse().unwrap(),
        };
        status.compared(
            "low",
            "BalanceEx",
            vec![
                comparison("spendable USD", "100", "10"),
                comparison("spendable XBT", "0", "0.5"),
                comparison("available EUR (spot)", "4250.00", "10000"),
            ],
        );
        status.compared(
            "fine",
            "BalanceEx",
            vec![
                comparison("spendable USD", "100", "10"),
                comparison("spendable ETH", "3", "2"),
                comparison("spendable DOT", "5", "0"),
            ],
        );
        let html = status.render_html();
        // The one below with the least headroom (0 XBT of 0.5), red, and how many are below.
        assert!(
            html.contains("<tr class=\"below\"><td>low</td><td>spendable XBT</td><td class=\"figure\">0</td><td>0.5</td><td>2 of 3</td></tr>"),
            "{html}"
        );
        assert!(
            html.contains("<tr class=\"above\"><td>fine</td><td>spendable ETH</td><td class=\"figure\">3</td><td>2</td><td>0 of 3</td></tr>"),
            "{html}"
        );
        assert!(html.contains("<tr class=\"none\"><td>none</td>"), "{html}");
    }

    #[test]
    fn events_are_bounded_newest_first() {
        let status = Status::default();
        status.configure(&[("main", vec!["BalanceEx"])]);
        for items in 0..(EVENTS_KEPT + 5) {
            status.succeeded("main", "BalanceEx", items, Duration::ZERO);
        }
        let html = status.render_html();
        assert_eq!(html.matches("ok, ").count(), EVENTS_KEPT);
        let newest = format!("ok, {} rows", EVENTS_KEPT + 4);
        assert!(html.find(&newest) < html.find("ok, 5 rows"), "{html}");
        assert!(!html.contains("ok, 4 rows"), "{html}");
    }

    #[test]
    fn the_page_shows_the_newest_polls_of_all_accounts_in_one_table() {
        let status = Status::default();
        let accounts: Vec<String> = (0..20).map(|n| format!("desk-{n:02}")).collect();
        let configured: Vec<(&str, Vec<&'static str>)> = accounts
            .iter()
            .map(|a| (a.as_str(), vec!["BalanceEx"]))
            .collect();
        status.configure(&configured);
        // Account by account, so the last ten accounts' polls are the newest.
        for account in &accounts {
            for items in 0..EVENTS_KEPT {
                status.succeeded(account, "BalanceEx", items, Duration::ZERO);
            }
        }
        let html = status.render_html();
        let events = &html[html.find("<h2>Recent polls</h2>").expect("events table")..];
        assert_eq!(events.matches("ok, ").count(), EVENTS_SHOWN, "{events}");
        assert!(!events.contains("<td>desk-09</td>"), "{events}");
        assert!(events.contains("<td>desk-10</td>"), "{events}");
        // Newest first: the last account's last poll leads.
        let first = events.find("<td>desk-19</td>").unwrap();
        assert!(first < events.find("<td>desk-10</td>").unwrap(), "{events}");
        assert!(events[first..].starts_with(&format!(
            "<td>desk-19</td><td>BalanceEx</td><td>ok, {} rows</td>",
            EVENTS_KEPT - 1
        )));
    }
}
