//! What `/metrics` serves: the chunks of the newest version of the state, joined once per version by
//! the first scrape that finds it newer than what it holds (references to shared bytes; their gzip
//! members also as one buffer, made by the version's first gzip scrape), and the process metrics, re-rendered when a scrape finds them older than
//! [`PROCESS_REFRESH`], so even a flood of scrapes reads `/proc` at most once a second.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::{Encoder, Registry, TextEncoder};

use super::Metrics;
use crate::exposition::Encoded;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How old the process metrics in a scrape may be.
pub const PROCESS_REFRESH: Duration = Duration::from_secs(1);

/// What scrapes are served: the joined parts of one version and the process part.
#[derive(Default)]
pub(super) struct Exposition {
    /// Family headers and chunks, in exposition order; shared, not joined, so the text exists once
    /// in memory.
    published: Arc<[Encoded]>,
    /// The gzip members of `published` as one buffer, made by the first gzip scrape of the version.
    published_gzip: Arc<OnceLock<Bytes>>,
    /// The state's version `published` was joined from.
    version: Option<u64>,
    process: Encoded,
    process_rendered_at: Option<Instant>,
}

/// The body of one scrape: the published parts, then the process part.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub published: Arc<[Encoded]>,
    published_gzip: Arc<OnceLock<Bytes>>,
    pub process: Encoded,
}

/// The smallest gzip member a published part keeps as a slice of the joined body rather than as
/// its own copy (a family's header compresses to less; an account's balances to some 800 bytes).
pub(super) const SHARED_MEMBER: usize = 256;

impl Scrape {
    /// The plain-text chunks, in order.
    pub fn plain(&self) -> Vec<Bytes> {
        self.parts().map(|part| part.plain().clone()).collect()
    }

    /// The gzip body: the published parts' members joined into one buffer (once per version: the
    /// compressed text is small, and one buffer is written far faster than hundreds of small ones),
    /// then the process part's member. Each part then keeps its member as a slice of that buffer,
    /// so the compressed text is in memory once, and the next version's join copies the members
    /// of the parts it keeps from it.
    pub fn gzip(&self) -> Vec<Bytes> {
        let published = self.published_gzip.get_or_init(|| {
            let members: Vec<Bytes> = self.published.iter().map(Encoded::gzip).collect();
            let mut joined = Vec::with_capacity(members.iter().map(|m| m.len()).sum());
            for member in &members {
                joined.extend_from_slice(member);
            }
            let joined = Bytes::from(joined);
            let mut at = 0;
            for (part, member) in self.published.iter().zip(&members) {
                // A small member keeps its own copy: a family's header outlives the versions that
                // publish it (it is left out while the family has no lines), and a slice would
                // keep the whole buffer alive with it.
                if member.len() >= SHARED_MEMBER {
                    part.share_gzip(joined.slice(at..at + member.len()));
                }
                at += member.len();
            }
            joined
        });
        vec![published.clone(), self.process.gzip()]
    }

    fn parts(&self) -> impl Iterator<Item = &Encoded> {
        self.published.iter().chain(std::iter::once(&self.process))
    }

    pub fn text(&self) -> String {
        self.plain()
            .iter()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect()
    }
}

impl Metrics {
    /// What a scrape serves: the newest version's parts plus process metrics at most a second old.
    pub fn scrape(&self) -> Scrape {
        let now = Instant::now();
        let newest = self.version.load(Ordering::Acquire);
        let current = |e: &Exposition| {
            e.version == Some(newest)
                && e.process_rendered_at
                    .is_some_and(|at| now.duration_since(at) < PROCESS_REFRESH)
        };
        {
            let exposition = crate::sync::read(&self.exposition);
            if current(&exposition) {
                return Scrape {
                    published: Arc::clone(&exposition.published),
                    published_gzip: Arc::clone(&exposition.published_gzip),
                    process: exposition.process.clone(),
                };
            }
        }
        let mut exposition = crate::sync::write(&self.exposition);
        let joined = exposition.version != Some(newest);
        if joined {
            let mut state = crate::sync::lock(&self.state);
            let mut parts = Vec::with_capacity(exposition.published.len());
            for slot in &mut state.slots {
                slot.assemble(&mut parts);
            }
            exposition.published = parts.into();
            exposition.published_gzip = Arc::default();
            exposition.version = Some(state.version);
        }
        if exposition
            .process_rendered_at
            .is_none_or(|at| now.duration_since(at) >= PROCESS_REFRESH)
        {
            exposition.process = Encoded::of(encode(&self.process_registry));
            exposition.process_rendered_at = Some(now);
        }
        let scrape = Scrape {
            published: Arc::clone(&exposition.published),
            published_gzip: Arc::clone(&exposition.published_gzip),
            process: exposition.process.clone(),
        };
        drop(exposition);
        if joined {
            // The texts of the version before are freed (unless a scrape still sends them); the
            // trim runs outside the lock other scrapes wait on.
            crate::allocator::give_back();
        }
        scrape
    }

    /// The full exposition as one string (for `--once` and tests).
    pub fn render_text(&self) -> String {
        self.scrape().text()
    }
}

fn encode(registry: &Registry) -> Vec<u8> {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("encoding into a Vec cannot fail");
    buffer
}
