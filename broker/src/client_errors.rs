//! Client errors in the log: one line per (client, error kind) per
//! interval, with the count of the repeats it stood for.
//!
//! A misbehaving or misconfigured client repeats its mistake as fast as it
//! can (a producer retrying into an unknown topic, a client speaking a
//! version we do not serve and reconnecting), so logging every occurrence
//! would flood the log, and logging none would leave the operator blind.
//! Each (client, kind) pair gets a window of [`CLIENT_ERROR_LOG_INTERVAL`]:
//!
//! ```text
//! first error            → logged now                     (window opens)
//! repeats in the window  → counted, not logged
//! first error after it   → logged now, with the count     (window reopens)
//! window over, no error  → the maintenance pass logs the count, forgets the pair
//! ```
//!
//! A client is its client id and host (`client_id@/ip`); a kind is the
//! API and the Kafka error name, or the reason a connection was closed.
//!
//! # Limits
//! At most [`CLIENT_ERROR_PAIRS_MAX`] pairs are remembered; errors of a
//! pair that finds the table full are counted together and reported once
//! per window as `other clients`. A client id is cut to
//! [`CLIENT_ID_LOGGED_BYTES_MAX`] bytes.
//!
//! Three places report: a connection closed for breaking the protocol or
//! a bound (`connection.rs`, `dispatch.rs`), and every [`BrokerError`]
//! turned into a Kafka error while a request is dispatched (its
//! `error_code`, which reads the request from a task-local
//! [`RequestContext`]).
//!
//! # Caveats
//! - Errors decided after a handler returns (a produce waiting for fsync,
//!   a fetch long-polling) are outside the dispatch scope and not seen.
//! - Errors a handler writes as a Kafka code directly, without a
//!   [`BrokerError`], are not seen.
//!
//! [`BrokerError`]: crate::error::BrokerError

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::{ErrorCode, ResponseError};

/// How long one line stands for its repeats.
pub const CLIENT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// (client, kind) pairs remembered at once; bounds the table's memory.
pub const CLIENT_ERROR_PAIRS_MAX: usize = 1024;
/// A client id longer than this is cut in the log and the table key.
pub const CLIENT_ID_LOGGED_BYTES_MAX: usize = 128;

/// The broker's one table (the log is process-wide too).
pub static CLIENT_ERRORS: LazyLock<ClientErrorLog> =
    LazyLock::new(|| ClientErrorLog::new(CLIENT_ERROR_LOG_INTERVAL, CLIENT_ERROR_PAIRS_MAX));

/// The request being dispatched, for errors decided inside it. Cloning
/// it copies no bytes (the client id is a slice of the request frame).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub host: Arc<str>,
    pub client_id: Option<StrBytes>,
    pub api: ApiKey,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// Runs `f` (a request's handler) with `ctx` as the request errors are
/// reported against.
pub async fn within<F: Future>(ctx: RequestContext, f: F) -> F::Output {
    REQUEST.scope(ctx, f).await
}

/// A request is answered with `code` because of `error`: reported against
/// the request being dispatched, if any (nothing outside a request).
pub fn answered(error: &dyn std::fmt::Display, code: &ResponseError) {
    let _ = REQUEST.try_with(|ctx| {
        let who = Requester {
            host: &ctx.host,
            client_id: ctx.client_id.as_deref().unwrap_or(""),
        };
        let name = sluice_client::kafka_name(ErrorCode::from_code(code.code()));
        report(who, &format!("{:?} {name}", ctx.api), &error.to_string());
    });
}

/// Who made the request an error answers, for the log line.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// Kafka's host form, `/ip`.
    pub host: &'a str,
    pub client_id: &'a str,
}

/// Logs `kind` (an API and Kafka error name, or a close reason) for the
/// client, unless its window already logged one; `detail` is this
/// occurrence's message.
pub fn report(who: Requester<'_>, kind: &str, detail: &str) {
    let client = client_key(who);
    match CLIENT_ERRORS.note(Instant::now(), &client, kind) {
        Decision::Log { repeats } => {
            tracing::info!(client = %client, error = %kind, %detail, repeats, "client error");
        }
        Decision::LogOverflow { repeats } => {
            tracing::info!(client = %client, error = %kind, %detail, repeats, "client error (the table of clients is full; counted with other clients)");
        }
        Decision::Counted => {}
    }
}

/// Logs the counts of windows that ended with repeats no line reported,
/// and forgets those pairs. Called by the maintenance pass.
pub fn flush_ended_windows() {
    for (client, kind, repeats) in CLIENT_ERRORS.ended(Instant::now()) {
        tracing::info!(client = %client, error = %kind, repeats, "client error repeated");
    }
}

fn client_key(who: Requester<'_>) -> String {
    let mut end = who.client_id.len().min(CLIENT_ID_LOGGED_BYTES_MAX);
    while !who.client_id.is_char_boundary(end) {
        end -= 1;
    }
    let id = who.client_id.get(..end).unwrap_or_default();
    format!("{id}@{}", who.host)
}

/// What to do with one occurrence.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Log it; `repeats` earlier ones of the pair were not logged.
    Log { repeats: u64 },
    /// The table is full: log it as the `other clients` pair.
    LogOverflow { repeats: u64 },
    /// Counted in the open window.
    Counted,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    repeats: u64,
}

/// The windows, by (client, kind). The pair `("", "")` is the overflow.
#[derive(Debug)]
pub struct ClientErrorLog {
    interval: Duration,
    pairs_max: usize,
    windows: Mutex<HashMap<(String, String), Window>>,
}

impl ClientErrorLog {
    pub fn new(interval: Duration, pairs_max: usize) -> Self {
        Self {
            interval,
            pairs_max,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Notes one occurrence at `now`.
    pub fn note(&self, now: Instant, client: &str, kind: &str) -> Decision {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (client.to_string(), kind.to_string());
        let overflow = !windows.contains_key(&key) && windows.len() >= self.pairs_max;
        if overflow {
            key = (String::new(), String::new());
        }
        let decision = match windows.get_mut(&key) {
            Some(w) if now.saturating_duration_since(w.opened) < self.interval => {
                w.repeats += 1;
                return Decision::Counted;
            }
            Some(w) => {
                let repeats = w.repeats;
                *w = Window {
                    opened: now,
                    repeats: 0,
                };
                repeats
            }
            None => {
                windows.insert(
                    key,
                    Window {
                        opened: now,
                        repeats: 0,
                    },
                );
                0
            }
        };
        if overflow {
            Decision::LogOverflow { repeats: decision }
        } else {
            Decision::Log { repeats: decision }
        }
    }

    /// Removes every window that ended by `now`; returns those that
    /// counted repeats no line reported, as (client, kind, repeats).
    pub fn ended(&self, now: Instant) -> Vec<(String, String, u64)> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        windows.retain(|(client, kind), w| {
            let open = now.saturating_duration_since(w.opened) < self.interval;
            if !open && w.repeats > 0 {
                let client = if client.is_empty() {
                    "other clients".to_string()
                } else {
                    client.clone()
                };
                out.push((client, kind.clone(), w.repeats));
            }
            open
        });
        out
    }

    /// Pairs remembered now.
    pub fn len(&self) -> usize {
        self.windows.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn one_line_per_client_and_kind_per_window_with_the_count() {
        let log = ClientErrorLog::new(MIN, 16);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            log.note(at(0), "a@/1", "Produce UNKNOWN_TOPIC"),
            Decision::Log { repeats: 0 }
        );
        for s in 1..=5 {
            assert_eq!(
                log.note(at(s), "a@/1", "Produce UNKNOWN_TOPIC"),
                Decision::Counted
            );
        }
        // Another client, or another kind, has its own window.
        assert_eq!(
            log.note(at(6), "b@/1", "Produce UNKNOWN_TOPIC"),
            Decision::Log { repeats: 0 }
        );
        assert_eq!(
            log.note(at(6), "a@/1", "Fetch NOT_LEADER"),
            Decision::Log { repeats: 0 }
        );
        // The first after the window carries the five it stood for.
        assert_eq!(
            log.note(at(61), "a@/1", "Produce UNKNOWN_TOPIC"),
            Decision::Log { repeats: 5 }
        );
        assert_eq!(
            log.note(at(62), "a@/1", "Produce UNKNOWN_TOPIC"),
            Decision::Counted
        );
    }

    #[test]
    fn ended_windows_report_unlogged_repeats_and_are_forgotten() {
        let log = ClientErrorLog::new(MIN, 16);
        let t0 = Instant::now();
        log.note(t0, "a@/1", "x");
        log.note(t0, "a@/1", "x");
        log.note(t0, "a@/1", "x");
        log.note(t0, "b@/1", "x");
        assert!(log.ended(t0 + Duration::from_secs(59)).is_empty());
        assert_eq!(log.len(), 2);
        let ended = log.ended(t0 + MIN);
        assert_eq!(ended, vec![("a@/1".to_string(), "x".to_string(), 2)]);
        assert!(log.is_empty(), "both windows ended, so both pairs are gone");
    }

    #[test]
    fn a_full_table_counts_new_pairs_together() {
        let log = ClientErrorLog::new(MIN, 2);
        let t0 = Instant::now();
        log.note(t0, "a", "x");
        log.note(t0, "b", "x");
        assert_eq!(log.note(t0, "c", "x"), Decision::LogOverflow { repeats: 0 });
        // The overflow pair is the one extra entry: memory stays bounded.
        assert_eq!(log.note(t0, "d", "y"), Decision::Counted);
        assert_eq!(log.len(), 3);
        for i in 0..1000 {
            log.note(t0, &format!("client-{i}"), "z");
        }
        assert_eq!(log.len(), 3);
        let ended = log.ended(t0 + MIN);
        assert!(
            ended.contains(&("other clients".to_string(), String::new(), 1001)),
            "{ended:?}"
        );
    }

    #[test]
    fn client_ids_are_cut_at_a_char_boundary() {
        let long = "é".repeat(200);
        let key = client_key(Requester {
            host: "/127.0.0.1",
            client_id: &long,
        });
        assert!(key.len() <= CLIENT_ID_LOGGED_BYTES_MAX + "@/127.0.0.1".len());
        assert!(key.ends_with("@/127.0.0.1"));
    }
}
