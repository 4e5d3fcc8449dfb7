//! Rendering: the payload a delivery carries, shaped by the integration's profile, and its
//! signature. Pure functions; no I/O.
//!
//! A profile turns a stored event into bytes. Profiles are versioned: adding a field is not
//! breaking; removing or renaming one needs a new profile name. New profiles are new variants of
//! [`Profile`] with their own module.

mod canonical;
pub mod sign;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::model::event::{EventKind, StoredEvent};
use crate::model::integration::ValidSpec;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// `{id, type, tenant_id, occurred_at, call_id, data}` as stored, plus `delivery_id`.
    #[default]
    Canonical,
}

impl Profile {
    /// Refuses event types the profile cannot render.
    pub fn check_feeds(self, _kinds: &[EventKind]) -> Result<(), String> {
        match self {
            Profile::Canonical => Ok(()),
        }
    }
}

/// A rendered request body and its content type.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Bytes,
    pub content_type: &'static str,
}

pub const JSON: &str = "application/json; charset=utf-8";

/// Renders `event` for one delivery to an integration with `spec`.
pub fn render(event: &StoredEvent, _spec: &ValidSpec, delivery_id: &str) -> Rendered {
    match _spec.spec.profile {
        Profile::Canonical => Rendered {
            body: canonical::render(&event.body, delivery_id),
            content_type: JSON,
        },
    }
}
