//! `cdr-batch` (seed 003): a window's calls, `{feed, window, part, parts, items}`, sent as it
//! was assembled when the window closed.
//!
//! Each item is the `cdr` profile's record with `orgId`, privacy rules applied item by item
//! (each by its own call's direction); the body itself has no field privacy rules reach. A
//! window of more than 1000 calls is sent in parts, each a body of its own.

use serde_json::{Map, Value};

/// The `cdr-batch` payload: one part of a closed window.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CdrBatchPayload {
    /// The partner feed: `analytics` or `billing`. Sometimes present: only on partner
    /// integrations' feeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<String>,
    /// The window the part belongs to. Always present.
    pub window: CdrBatchWindow,
    /// This part's number, from 1. Always present.
    pub part: u64,
    /// How many parts the window has. Always present.
    pub parts: u64,
    /// The part's calls (at most 1000), in end-time order. Always present.
    pub items: Vec<CdrBatchItem>,
}

/// The nominal window `[start, end)`; its calls are those queued that ended before `end`.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CdrBatchWindow {
    /// The window's start, RFC 3339 UTC with milliseconds.
    pub start: String,
    /// The window's end (its cut-off), RFC 3339 UTC with milliseconds.
    pub end: String,
}

super::cdr::cdr_record! {
    /// One call of the window: the `cdr` profile's record (see `CdrRecord`) and `orgId`.
    CdrBatchItem {
        /// The call's tenant. Always present.
        #[serde(rename = "orgId")]
        pub org_id: String,
    }
}
