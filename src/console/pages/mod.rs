//! The console's pages. Each one calls the API handler that does the same thing and shows its
//! result (or its error, in the API's words) as HTML. `common` holds what they share.

pub(super) mod actions;
mod common;
pub(super) mod integrations;
pub(super) mod live;
pub(super) mod notifications;
pub(super) mod preview;
pub(super) mod reconciliation;
pub(super) mod sign_in;
