//! The Sluice broker (being written; see issue 3).
