//! Serialised payload parts shared by every integration with the same variant, so an event
//! that fans out to many integrations is serialised once per variant, not once per endpoint.
//!
//! Today: the `cdr` record with its privacy rules applied (the expensive part of the `cdr`
//! profile; the per-integration fields are spliced around it). Bounded: the parts of the last
//! [`CAPACITY`] events are kept, oldest dropped first. Entries compare the full rules, not a
//! hash of them, so one variant can never be served another's (privacy-relevant) bytes.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;

use super::cdr;
use super::privacy::Rules;
use crate::model::event::StoredEvent;

/// Events whose parts are kept.
pub const CAPACITY: usize = 4096;

#[derive(Default)]
pub struct RenderCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    records: HashMap<i64, Vec<(Rules, Bytes)>>,
    order: VecDeque<i64>,
}

impl RenderCache {
    /// The serialised `cdr` record of `event` under `rules`.
    pub fn cdr_record(&self, event: &StoredEvent, rules: &Rules) -> Bytes {
        // Sample events (test sends) are not stored and have no sequence number of their own.
        if event.seq <= 0 {
            return cdr::record_json(&event.event, rules);
        }
        if let Some(found) = self
            .inner
            .lock()
            .records
            .get(&event.seq)
            .and_then(|variants| {
                variants
                    .iter()
                    .find(|(r, _)| r == rules)
                    .map(|(_, b)| b.clone())
            })
        {
            return found;
        }
        let bytes = cdr::record_json(&event.event, rules);
        let mut inner = self.inner.lock();
        if !inner.records.contains_key(&event.seq) {
            inner.order.push_back(event.seq);
            while inner.order.len() > CAPACITY {
                if let Some(old) = inner.order.pop_front() {
                    inner.records.remove(&old);
                }
            }
        }
        let variants = inner.records.entry(event.seq).or_default();
        if !variants.iter().any(|(r, _)| r == rules) {
            variants.push((rules.clone(), bytes.clone()));
        }
        bytes
    }

    pub fn len(&self) -> usize {
        self.inner.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::parse_event;
    use crate::model::integration::{PrivacyAction, PrivacyRule, PrivacyTarget};
    use serde_json::json;

    fn stored(seq: i64) -> StoredEvent {
        let event = parse_event(json!({"id": format!("e{seq}"), "type": "call.completed",
            "tenant_id": "t", "occurred_at": "2026-11-22T10:00:00Z", "call_id": format!("c{seq}"),
            "data": {"direction": "inbound", "caller": {"number": "+441610000001"}}}))
        .unwrap_or_else(|e| panic!("{e}"));
        StoredEvent {
            seq,
            body: event.canonical_json(),
            event,
        }
    }

    #[test]
    fn each_variant_is_kept_apart_and_memory_is_bounded() {
        let cache = RenderCache::default();
        let plain = Rules::new();
        let mut masked = Rules::new();
        masked.insert(
            PrivacyTarget::RemoteNumber,
            PrivacyRule {
                action: PrivacyAction::Mask,
                digits: Some(3),
            },
        );
        let e = stored(1);
        let a = cache.cdr_record(&e, &plain);
        let b = cache.cdr_record(&e, &masked);
        assert_ne!(a, b, "the masked variant is not served the plain bytes");
        assert_eq!(cache.cdr_record(&e, &plain), a);
        assert_eq!(cache.cdr_record(&e, &masked), b);
        assert_eq!(a, cdr::record_json(&e.event, &plain));
        for seq in 2..(CAPACITY as i64 + 10) {
            cache.cdr_record(&stored(seq), &plain);
        }
        assert_eq!(cache.len(), CAPACITY);
    }
}
