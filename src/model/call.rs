//! What the store tracks of a call besides its events: the records callhook builds from call
//! states are told apart by their id.

use crate::model::event::Event;

/// Id prefix of the `call.completed` records callhook builds; a source's own record for the
/// same call supersedes one not yet sent.
pub const DERIVED_CDR_PREFIX: &str = "derived-cdr:";

/// What the store knows of a call when its terminated state is accepted.
#[derive(Debug, Clone)]
pub struct TerminatedCall {
    /// The terminated state itself.
    pub event: Event,
    /// When the call's first state occurred.
    pub started_at: i64,
    /// When its confirmed state occurred, if it was answered.
    pub answered_at: Option<i64>,
}
