//! Delivery: sending deliveries to receivers and scheduling what comes next.
//!
//! - [`client`]: the one shared HTTP client (keep-alive, HTTP/2 when offered, no redirects, the
//!   SSRF-guarded resolver) and the classification of what came back.
//! - [`dispatcher`]: a worker per integration with its own queue and in-flight limit, so a slow
//!   or hanging endpoint only ever delays itself; and the claimer that takes due work from the
//!   store (retries, recovery, overflow) with the same back-pressure.
//! - [`tls`]: trust roots, client certificates, and what went wrong in a handshake.
//! - [`attempt`]: one attempt — render, sign, send, record, decide.
//! - [`challenge`]: the challenge–response check run when an integration is saved.
//! - [`broker`]: destinations that are brokers (NATS JetStream): publish with confirmation.

mod alerts;
pub mod attempt;
pub mod batch;
pub mod broker;
pub mod challenge;
pub mod claimer;
pub mod client;
pub mod dispatcher;
pub mod notify;
pub mod rate;
pub mod stream;
pub mod tls;
mod worker;

pub use dispatcher::Dispatcher;
