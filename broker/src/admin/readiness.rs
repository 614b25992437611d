//! Whether the broker serves clients: what `/ready` answers.
//!
//! ```text
//! Starting ──(logs recovered, controller elected, groups loaded, listening)──► Serving
//! Serving ──(SIGTERM/SIGINT)──► Stopping
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
