//! `sluice-client`: the native async Kafka-protocol client (producer, consumer, admin).
//!
//! # Caveats
//! Not written yet: this crate is tracked by issue 5 and is a workspace member
//! now only so the layout in `DESIGN.md` is fixed from the start.
