//! What `/metrics` serves: the exposition last published by [`Metrics::update`](super::Metrics::update)
//! (hand-rendered chunks, then the registry, plain and gzip) and the process metrics, re-rendered when
//! a scrape finds them older than [`PROCESS_REFRESH`], so even a flood of scrapes reads `/proc` at most
//! once a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::{Encoder, Registry, TextEncoder};

use super::{Metrics, State};
use crate::exposition::Encoded;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How old the process metrics in a scrape may be.
pub const PROCESS_REFRESH: Duration = Duration::from_secs(1);

/// What scrapes are served: the published parts and the process part.
#[derive(Default)]
pub(super) struct Exposition {
    /// Family headers, rendered chunks and the rendered registry, in exposition order; shared, not
    /// joined, so the text exists once in memory.
    published: Arc<[Encoded]>,
    process: Encoded,
    process_rendered_at: Option<Instant>,
}

/// The body of one scrape: the published parts, then the process part.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub published: Arc<[Encoded]>,
    pub process: Encoded,
}

impl Scrape {
    /// The plain-text chunks, in order.
    pub fn plain(&self) -> Vec<Bytes> {
        self.parts().map(|part| part.plain().clone()).collect()
    }

    /// The gzip chunks, in order (one gzip member each).
    pub fn gzip(&self) -> Vec<Bytes> {
        self.parts().map(|part| part.gzip().clone()).collect()
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
    /// Joins the rendered chunks and the rendered registry, plain and gzip, for the next scrapes.
    /// Callers hold the state lock, so renders are stored in the order the changes were made.
    pub(super) fn publish(&self, state: &State) {
        let registry = Encoded::of(encode(&self.registry));
        let mut parts: Vec<Encoded> = Vec::new();
        for rendered in &state.rendered {
            for (index, header) in rendered.headers.iter().enumerate() {
                let lines: Vec<&Encoded> = rendered
                    .chunks
                    .values()
                    .map(|account| &account[index])
                    .filter(|chunk| !chunk.is_empty())
                    .collect();
                if !lines.is_empty() {
                    parts.push(header.clone());
                    parts.extend(lines.into_iter().cloned());
                }
            }
        }
        parts.push(registry);
        crate::sync::write(&self.exposition).published = parts.into();
    }

    /// What a scrape serves: the last published text plus process metrics at most a second old.
    pub fn scrape(&self) -> Scrape {
        let now = Instant::now();
        let fresh = |e: &Exposition| {
            e.process_rendered_at
                .is_some_and(|at| now.duration_since(at) < PROCESS_REFRESH)
        };
        {
            let exposition = crate::sync::read(&self.exposition);
            if fresh(&exposition) {
                return Scrape {
                    published: Arc::clone(&exposition.published),
                    process: exposition.process.clone(),
                };
            }
        }
        let mut exposition = crate::sync::write(&self.exposition);
        if !fresh(&exposition) {
            exposition.process = Encoded::of(encode(&self.process_registry));
            exposition.process_rendered_at = Some(now);
        }
        Scrape {
            published: Arc::clone(&exposition.published),
            process: exposition.process.clone(),
        }
    }

    /// The full exposition as one string (for `--once` and tests).
    pub fn render_text(&self) -> String {
        self.scrape().text()
    }
}

fn encode(registry: &Registry) -> Bytes {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("encoding into a Vec cannot fail");
    Bytes::from(buffer)
}
