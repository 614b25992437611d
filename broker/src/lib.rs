//! `sluice-broker`: the Sluice broker — network server, request handlers,
//! partition replicas, metadata, durability.
//!
//! ```text
//! server ─► connection (one task each) ─► dispatch ─► handlers/*
//!              │                                        │
//!              └ writes replies in order                ├─► replica::ReplicaManager ─► Partition ─► storage::PartitionLog
//!                (writev of mapped fetch regions)       └─► Broker::propose ─► metadata::Controller ─► MetadataLog
//! ```
//!
//! See `docs/ARCHITECTURE.md` for the produce and fetch paths and
//! `docs/durability.md` for what an acknowledgement promises.

pub mod admin;
pub mod broker;
pub mod client_errors;
pub mod config;
pub mod connection;
pub mod connection_quota;
pub mod controller;
pub mod decompression_budget;
pub mod dispatch;
pub mod error;
pub mod group;
pub mod handlers;
pub mod lifecycle;
pub mod logging;
pub mod metadata;
pub mod replica;
pub mod response;
pub mod server;
pub mod settings;
