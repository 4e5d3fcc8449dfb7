//! Planning: an event's deliveries, one per integration it routes to, decided over the cache
//! of integrations. Used by every path that stores events: ingest, and the operational events
//! the dispatcher makes.

use crate::cache::{Integration, IntegrationCache};
use crate::model::event::{Event, EventKind};
use crate::model::integration::{DeliveryMode, Feed};
use crate::store::{IngestItem, IntegrationStatus, NewDelivery};

use super::route;

/// Whether a partner integration's feed carries this call: analytics takes every call of the
/// partner's tenants, billing every call made under a licence the partner sold.
fn in_feed(i: &Integration, event: &Event, tenant_partner: Option<&str>) -> bool {
    let Some(pid) = i.partner_id.as_deref() else {
        return false;
    };
    match i.valid.spec.feed.unwrap_or(Feed::Analytics) {
        Feed::Analytics => tenant_partner == Some(pid),
        Feed::Billing => {
            event.kind == EventKind::CallCompleted
                && crate::model::fields::str_at(&event.data, "license.partner_id") == Some(pid)
        }
    }
}

/// Routes an event to its tenant's integrations and to the partner feeds that carry it, and
/// serialises it once, at `now`. Batch integrations whose profile collects a window's calls get
/// the call queued for their next window; other batch integrations get a delivery held until
/// the window's boundary.
pub fn plan(
    event: Event,
    cache: &IntegrationCache,
    tenant_partner: Option<&str>,
    now: i64,
) -> IngestItem {
    let own = cache.for_tenant(&event.tenant_id);
    let partners = cache.partner_integrations();
    let mut deliveries = Vec::new();
    let mut batch = Vec::new();
    let feeds = partners
        .iter()
        .filter(|i| in_feed(i, &event, tenant_partner));
    let about = crate::model::alert::subject(&event);
    for i in own.iter().chain(feeds) {
        // A stream is read live from the event log by its clients: nothing to queue for it.
        if about == Some(i.id.as_str()) || i.valid.spec.destination.is_stream() {
            continue;
        }
        let Some(trigger) = route(&event, &i.valid) else {
            continue;
        };
        let spec = &i.valid.spec;
        if spec.delivery.mode == DeliveryMode::Batch && spec.profile.collects() {
            batch.push(i.id.clone());
            continue;
        }
        deliveries.push(NewDelivery {
            id: crate::model::ids::new_id("dlv"),
            integration_id: i.id.clone(),
            trigger,
            // Operational events have no call: never chained behind one another.
            ordered: i.valid.ordered() && !event.kind.is_operational(),
            held: i.status == IntegrationStatus::Disabled,
            defer: false,
            not_before: i.valid.held_until(now),
        });
    }
    IngestItem {
        body: event.canonical_json(),
        event,
        deliveries,
        batch,
    }
}
