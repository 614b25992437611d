//! Whether the broker serves clients: what `/ready` answers.
//!
//! ```text
//! Starting ──(logs recovered, controller elected, groups loaded, listening)──► Serving
//! Serving ──(SIGTERM/SIGINT)──► Stopping
//! Serving, but the image this node follows holds this start's incarnation
//!   fenced (or not at all) ──► answered "fenced", not ready, until unfenced
//! any ──(its log directory failed)──► reported not ready by the check itself
//! ```
//!
//! `/health` answers 200 whenever the process can answer HTTP at all
//! (liveness); `/ready` answers 200 only while Serving (readiness: a load
//! balancer or orchestrator sends clients only to ready brokers).

use std::sync::atomic::{AtomicU8, Ordering};

/// The broker's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening and recovering logs, waiting for a controller, loading groups.
    Starting,
    /// Accepting clients.
    Serving,
    /// Shutting down: no new connections.
    Stopping,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Serving => "serving",
            Self::Stopping => "stopping",
        }
    }
}

/// The current phase, shared by the server and the admin endpoint.
#[derive(Debug)]
pub struct Readiness(AtomicU8);

impl Default for Readiness {
    fn default() -> Self {
        Self(AtomicU8::new(0))
    }
}

impl Readiness {
    pub fn set(&self, phase: Phase) {
        let code = match phase {
            Phase::Starting => 0,
            Phase::Serving => 1,
            Phase::Stopping => 2,
        };
        self.0.store(code, Ordering::Release);
    }

    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Serving,
            _ => Phase::Stopping,
        }
    }
}

/// What `/ready` (and the `sluice_ready` gauge) answers: whether the
/// broker serves clients, and the word for its state. A serving broker the
/// cluster has fenced is not ready: the controller moved its leaderships
/// away and clients are told to go elsewhere.
pub fn readiness_answer(phase: Phase, fenced: bool) -> (bool, &'static str) {
    match phase {
        Phase::Serving if fenced => (false, "fenced"),
        Phase::Serving => (true, "serving"),
        other => (false, other.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unfenced_serving_broker_is_ready() {
        assert_eq!(readiness_answer(Phase::Serving, false), (true, "serving"));
        assert_eq!(readiness_answer(Phase::Serving, true), (false, "fenced"));
        assert_eq!(
            readiness_answer(Phase::Starting, false),
            (false, "starting")
        );
        assert_eq!(readiness_answer(Phase::Stopping, true), (false, "stopping"));
    }
}
