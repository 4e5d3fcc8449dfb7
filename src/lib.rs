//! callhook — a call-event webhook service.
//!
//! A tour of the crate, in the order an event travels (imports point only down this list):
//!
//! - [`api`] and [`console`]: the HTTP faces (one file per resource; the console's pages call
//!   the same handlers), wired together in [`app`] over the shared [`state`], served by
//!   [`serve`].
//! - [`ingest`]: the ingest use case ([`ingest::accept`]) — request bodies become validated
//!   [`model::event::Event`]s, are routed, stored with their deliveries, and dispatched.
//! - [`deliver`]: per-integration workers send deliveries over HTTPS (the SSRF-guarded client),
//!   [`record`] classifies each answer and decides what follows (retry, give up, disable).
//! - [`route`] and [`render`]: pure functions — which integrations an event goes to, and the
//!   payload, privacy rules and signature of each delivery.
//! - [`store`]: small storage ports ([`store::ports`]), algorithms written once over them
//!   ([`store::algo`]), SQLite (one node) and PostgreSQL (several nodes) behind them.
//! - [`model`]: the domain, valid by construction.
//!
//! Under everything: [`clock`] (the node's one time source), [`security`], [`config`],
//! [`metrics`], [`error`] (the one place errors become HTTP answers).

pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod bench;
pub mod cache;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod console;
pub mod deliver;
pub mod demo;
pub mod error;
pub mod ingest;
pub mod listen;
pub mod metrics;
pub mod model;
pub mod record;
pub mod render;
pub mod retention;
pub mod route;
pub mod security;
pub mod serve;
pub mod simulate;
pub mod state;
pub mod store;
pub mod time;

/// `callhook/<version>`: the User-Agent of every request callhook sends.
pub const USER_AGENT: &str = concat!("callhook/", env!("CARGO_PKG_VERSION"));
