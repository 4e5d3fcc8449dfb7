//! callhook — a call-event webhook service.
//!
//! A tour of the crate, in the order an event travels:
//!
//! - [`ingest`] turns request bodies into typed, validated [`model::event::Event`]s.
//! - [`store`] keeps events, deliveries and attempts durably behind one [`store::Store`] trait
//!   (SQLite with a single group-committing writer thread today; PostgreSQL fits the same trait).
//! - [`route`] decides, as a pure function, which integrations an event goes to.
//! - [`render`] shapes the payload of a delivery for an integration's profile and signs it.
//! - [`deliver`] sends deliveries over HTTPS: per-integration workers, retries, ordering, the
//!   SSRF-guarded client and the challenge handshake.
//! - [`record`] classifies each attempt's outcome and decides what happens next (retry, give up,
//!   disable the integration).
//!
//! Around the pipeline: [`api`] (one file per HTTP resource), [`console`] (the web pages, over
//! the same handlers), [`auth`] (tokens and roles),
//! [`security`] (SSRF guard, sealing of secrets), [`cache`] (integrations in memory), [`config`]
//! and [`app`], which wires everything together and owns shutdown.

pub mod api;
pub mod app;
pub mod auth;
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
