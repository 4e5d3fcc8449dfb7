//! The ingest use case: events from any source (`POST /v1/events`, FreeSWITCH's CDR posts …)
//! are checked against the caller's token, their tenants and their recording files, routed,
//! and stored with their deliveries; the answer comes once all of it is durable. The ready
//! deliveries go to the dispatcher; calls that ended with no record of their own get one built
//! from their states.

use serde_json::Value;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ingest::from_states::{derived_cdr, order_call_states, TerminatedCall};
use crate::model::event::{Event, EventKind};
use crate::model::tenancy::Role;
use crate::route::plan;
use crate::state::AppState;
use crate::store::{IngestBatch, Ingested, StoreError};

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct IngestOut {
    /// Events stored now (with their deliveries).
    pub accepted: u64,
    /// Events already stored earlier (same tenant and id); acknowledged, not delivered again.
    pub duplicates: u64,
}

/// Calls that ended with no record from their source get one built from their states, sent
/// after a grace period in which the source's own record would supersede it. Stored in the
/// same request, before it is acknowledged: a terminated call never ends up without a record.
async fn store_derived_records(
    s: &AppState,
    ended: &[TerminatedCall],
    plan_all: &impl Fn(Vec<Event>, i64) -> Vec<crate::store::IngestItem>,
    now: i64,
) -> ApiResult<()> {
    let mut items = plan_all(ended.iter().map(derived_cdr).collect(), now);
    // Sent after the grace, apart from the call's states: not held up behind them.
    for d in items.iter_mut().flat_map(|i| i.deliveries.iter_mut()) {
        d.ordered = false;
    }
    let not_before = now + s.config.derived_cdr_grace_ms as i64;
    let outcome = s
        .store
        .ingest(IngestBatch {
            items,
            lease: s.dispatcher.lease(),
            now,
            not_before: Some(not_before),
            config_version: None,
        })
        .await?;
    for kind in &outcome.accepted_kinds {
        crate::metrics::METRICS.ingested(*kind);
    }
    for (iid, due) in &outcome.scheduled {
        s.dispatcher.note_due(iid, *due);
    }
    Ok(())
}

/// Files one `recording.completed` may list (each is looked up before the event is stored).
const MAX_FILES_PER_RECORDING: usize = 32;

/// A recording event may name only files its own tenant uploaded: every file it names becomes a
/// signed link in the payload, so naming another tenant's file (or one never uploaded) would
/// hand that file out. File ids are per tenant, so the answer says nothing of other tenants.
async fn check_recording_files(s: &AppState, events: &[Event]) -> ApiResult<()> {
    for e in events
        .iter()
        .filter(|e| e.kind == EventKind::RecordingCompleted)
    {
        let files = e.data.get("files").and_then(Value::as_array);
        let mut ids: Vec<&str> = files
            .into_iter()
            .flatten()
            .filter_map(|f| f.get("file_id")?.as_str())
            .collect();
        if ids.len() > MAX_FILES_PER_RECORDING {
            return Err(ApiError::bad_request(
                "invalid_event",
                format!(
                    "event `{}` lists {} files; a recording has at most {MAX_FILES_PER_RECORDING}",
                    e.id,
                    ids.len()
                ),
            ));
        }
        ids.sort_unstable();
        ids.dedup();
        for fid in ids {
            if s.store.get_recording(&e.tenant_id, fid).await?.is_none() {
                return Err(ApiError::unprocessable(
                    "unknown_file",
                    format!(
                        "event `{}` names recording file `{fid}`, which tenant `{}` has not uploaded; upload it first (PUT /v1/recordings/{fid}), then send the event",
                        e.id, e.tenant_id
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Only operators and ingest tokens post events; checked before a body is read.
pub fn may_ingest(p: &Principal) -> ApiResult<()> {
    p.require(
        matches!(p.role, Role::Operator | Role::Ingest),
        "post events (use an ingest token)",
    )
}

/// Checks the events' tenants against the token, routes them and stores them with their
/// deliveries; answers once all of it is durable. Every source's events come through here.
pub async fn accept(s: &AppState, p: &Principal, events: Vec<Event>) -> ApiResult<IngestOut> {
    may_ingest(p)?;
    s.unopened.check()?;
    let mut partners: std::collections::HashMap<String, Option<String>> = Default::default();
    for e in &events {
        if let Some(own) = &p.tenant_id {
            if &e.tenant_id != own {
                return Err(ApiError::forbidden(format!(
                    "this ingest token is for tenant `{own}`; event `{}` is for `{}`",
                    e.id, e.tenant_id
                )));
            }
        }
        if !partners.contains_key(&e.tenant_id) {
            let Some(partner) = s.tenant_partner(&e.tenant_id).await? else {
                return Err(ApiError::unprocessable(
                    "unknown_tenant",
                    format!(
                        "event `{}` names tenant `{}`, which does not exist",
                        e.id, e.tenant_id
                    ),
                ));
            };
            partners.insert(e.tenant_id.clone(), partner);
        }
    }
    check_recording_files(s, &events).await?;
    let mut events = events;
    order_call_states(&mut events);
    let plan_all = |events: Vec<Event>, now: i64| -> Vec<_> {
        events
            .into_iter()
            .map(|e| {
                let partner = partners.get(&e.tenant_id).cloned().flatten();
                plan(e, &s.cache, partner.as_deref(), now)
            })
            .collect()
    };
    // On a shared store the routing is decided again should another node have changed the
    // configuration meanwhile: the store refuses to store events routed with stale caches.
    const TRIES: u32 = 3;
    let mut events = events;
    let mut tries = 0;
    let (outcome, now) = loop {
        tries += 1;
        let now = s.now_ms();
        // Read before the caches are: a change applied while routing makes the batch look
        // older than it is (routed again), never newer.
        let config_version = s.store.applied_version();
        let mut items = plan_all(events, now);
        s.dispatcher.defer_beyond_room(&mut items);
        let batch = IngestBatch {
            items,
            lease: s.dispatcher.lease(),
            now,
            not_before: None,
            config_version,
        };
        match s.store.ingest_routed(batch).await? {
            Ingested::Stored(outcome) => break (outcome, now),
            Ingested::Reroute { version, .. } if tries == TRIES => {
                return Err(StoreError::StaleConfig(version).into())
            }
            Ingested::Reroute { version, batch } => {
                crate::cluster::catch_up(s, version).await;
                events = batch.items.into_iter().map(|i| i.event).collect();
            }
        }
    };
    for kind in &outcome.accepted_kinds {
        crate::metrics::METRICS.ingested(*kind);
    }
    for _ in 0..outcome.duplicates {
        crate::metrics::METRICS.duplicate();
    }
    for _ in 0..outcome.stale {
        crate::metrics::METRICS.stale_state();
    }
    s.dispatcher.dispatch(outcome.ready);
    // Deliveries stored for the claimer (no room in this node's queue, or held for a batch
    // window's boundary): it looks when the first is due.
    let mut scheduled = outcome.scheduled;
    scheduled.sort_unstable();
    scheduled.dedup_by(|later, first| later.0 == first.0);
    for (iid, due) in &scheduled {
        s.dispatcher.note_due(iid, *due);
    }
    if !outcome.terminated.is_empty() {
        store_derived_records(s, &outcome.terminated, &plan_all, now).await?;
    }
    if outcome.accepted > 0 {
        s.streams.wake();
    }
    Ok(IngestOut {
        accepted: outcome.accepted as u64,
        duplicates: outcome.duplicates as u64,
    })
}
