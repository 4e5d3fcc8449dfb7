//! Algorithms written once, above the backends: each is an async function over a small trait of
//! primitives that a backend implements on its transaction (SQL only). PostgreSQL awaits its
//! primitives on a pooled transaction; SQLite's complete at once on the writer thread's
//! connection and the algorithm is driven there with [`run_now`].
//!
//! - [`progress`]: call progress (stale states, calls that ended without a record).
//! - [`outcomes`]: recording attempt outcomes and the ordered hand-over.
//! - [`windows`]: closing a batch window.

pub mod outcomes;
pub mod progress;
pub mod windows;

/// Runs a future whose every await completes at once (SQLite primitives on the writer's
/// connection): no runtime is needed, and the writer thread never blocks on one.
pub fn run_now<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}
