//! Storing routed events with their deliveries, one request or a group of them in one
//! transaction: duplicates skipped, call progress and ordering decided under per-call advisory
//! locks, requests routed with stale caches sent back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::GenericClient;

use super::events::*;
use super::progress;
use super::*;
use crate::model::call::DERIVED_CDR_PREFIX;
use crate::model::event::{Event, EventKind, StoredEvent};
use crate::store::algo::progress::{call_state, StateVerdict};
use crate::store::shared::{cdr_keys, fresh_head};

/// The advisory locks an ingest request needs: each call it records progress or a record for,
/// and each (integration, call) it adds an ordered delivery to.
pub fn ingest_lock_keys(batch: &IngestBatch) -> Vec<i64> {
    let mut keys = Vec::new();
    for item in &batch.items {
        let e = &item.event;
        if e.kind == EventKind::CallState || e.kind == EventKind::CallCompleted {
            keys.push(call_lock(&e.tenant_id, &e.call_id));
        }
        for d in item.deliveries.iter().filter(|d| d.ordered) {
            keys.push(order_lock(&d.integration_id, &e.call_id));
        }
    }
    keys
}

pub async fn ingest<C: GenericClient>(c: &C, batch: &IngestBatch) -> PgResult<Stored> {
    Ok(ingest_many(c, &[batch])
        .await?
        .pop()
        .unwrap_or(Stored::Done(IngestOutcome::default())))
}

/// What became of one ingest request.
pub enum Stored {
    Done(IngestOutcome),
    /// Routed with caches older than the store's configuration, which is at this version:
    /// nothing of the request was stored.
    Stale(i64),
}

/// Stores several ingest requests with the same statements (one insert of all their events,
/// one of all their deliveries…), as if one after the other; one outcome per request.
///
/// A request routed with caches older than the store's configuration
/// ([`IngestBatch::config_version`]) is not stored: the node routes it again once its caches
/// follow, so an integration disabled or edited on another node is obeyed from the next
/// event on. The version compared is the one read *before* routing: one read at commit would
/// pass a request routed just before the node's follower applied the change (seen: a batch
/// stored with no deliveries, routed before the node knew the new integration).
pub async fn ingest_many<C: GenericClient>(
    c: &C,
    batches: &[&IngestBatch],
) -> PgResult<Vec<Stored>> {
    let mut stale = vec![None; batches.len()];
    if batches.iter().any(|b| b.config_version.is_some()) {
        let version: i64 = query(c, "SELECT version FROM config_version WHERE id = 1", &[])
            .await?
            .first()
            .map(|r| r.get(0))
            .unwrap_or(0);
        for (s, b) in stale.iter_mut().zip(batches) {
            if b.config_version.is_some_and(|routed| version > routed) {
                *s = Some(version);
            }
        }
    }
    let fresh: Vec<&IngestBatch> = batches
        .iter()
        .zip(&stale)
        .filter(|(_, s)| s.is_none())
        .map(|(b, _)| *b)
        .collect();
    let mut stored = store_routed(c, &fresh).await?.into_iter();
    Ok(stale
        .into_iter()
        .map(|s| match s {
            Some(version) => Stored::Stale(version),
            None => Stored::Done(stored.next().unwrap_or_default()),
        })
        .collect())
}

/// Stores requests whose routing is current; one outcome per request.
pub(super) async fn store_routed<C: GenericClient>(
    c: &C,
    batches: &[&IngestBatch],
) -> PgResult<Vec<IngestOutcome>> {
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let mut outs: Vec<IngestOutcome> = batches.iter().map(|_| IngestOutcome::default()).collect();
    let now = batches.iter().map(|b| b.now).max().unwrap_or_default();
    // Every lock the requests need, taken up front and in order (already held when the group
    // committer took them: taking them again is free).
    lock_keys(
        c,
        batches.iter().flat_map(|b| ingest_lock_keys(b)).collect(),
    )
    .await?;
    let items: Vec<(usize, &IngestItem)> = batches
        .iter()
        .enumerate()
        .flat_map(|(r, b)| b.items.iter().map(move |i| (r, i)))
        .collect();

    let n = items.len();
    let (mut tenants, mut ids, mut types, mut calls) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut occurred, mut bodies, mut ended, mut licences) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut ingested = Vec::with_capacity(n);
    for (r, item) in &items {
        ingested.push(batches[*r].now);
        let e = &item.event;
        let (ended_at, licence) = cdr_keys(e);
        tenants.push(e.tenant_id.as_str());
        ids.push(e.id.as_str());
        types.push(e.kind.as_str());
        calls.push(e.call_id.as_str());
        occurred.push(e.occurred_at_ms);
        bodies.push(item.body.as_str());
        ended.push(ended_at);
        licences.push(licence);
    }
    let inserted = query(
        c,
        "INSERT INTO events (tenant_id, id, type, call_id, occurred_at, ingested_at, body, ended_at, license_partner)
         SELECT t, i, ty, ca, o, ing, b, en, l
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::int8[], $8::text[], $9::int8[])
              AS u(t, i, ty, ca, o, b, en, l, ing)
         ON CONFLICT (tenant_id, id) DO NOTHING
         RETURNING seq, tenant_id, id",
        &[&tenants, &ids, &types, &calls, &occurred, &bodies, &ended, &licences, &ingested],
    )
    .await?;
    let mut seqs: HashMap<(String, String), i64> = inserted
        .iter()
        .map(|r| ((r.get(1), r.get(2)), r.get(0)))
        .collect();
    let records: Vec<&Event> = items
        .iter()
        .map(|(_, i)| &i.event)
        .filter(|e| {
            e.kind == EventKind::CallCompleted
                && !e.id.starts_with(DERIVED_CDR_PREFIX)
                && seqs.contains_key(&(e.tenant_id.clone(), e.id.clone()))
        })
        .collect();
    progress::supersede_derived(c, &records, now).await?;

    struct Pending<'a> {
        request: usize,
        d: &'a NewDelivery,
        stored: Arc<StoredEvent>,
    }
    let mut new_deliveries: Vec<Pending> = Vec::new();
    let mut queue_rows: Vec<(&str, i64, i64)> = Vec::new();
    for &(r, item) in &items {
        let out = &mut outs[r];
        let now = batches[r].now;
        let e = &item.event;
        // The first item with an id takes its seq; a repeat within the request is a duplicate.
        let Some(seq) = seqs.remove(&(e.tenant_id.clone(), e.id.clone())) else {
            out.duplicates += 1;
            continue;
        };
        out.accepted += 1;
        out.accepted_kinds.push(e.kind);
        if let Some((rank, state_seq)) = e.call_state_position() {
            let mut rows = progress::ProgressRows(c);
            match call_state(&mut rows, e, rank, state_seq, now).await? {
                StateVerdict::Stale => {
                    out.stale += 1;
                    continue;
                }
                StateVerdict::Route { ended } => out.terminated.extend(ended),
            }
        }
        let (ended_at, _) = cdr_keys(e);
        for iid in &item.batch {
            queue_rows.push((iid, ended_at.unwrap_or(e.occurred_at_ms), seq));
        }
        if item.deliveries.is_empty() {
            continue;
        }
        let stored = Arc::new(StoredEvent {
            seq,
            event: e.clone(),
            body: item.body.clone(),
        });
        for d in &item.deliveries {
            new_deliveries.push(Pending {
                request: r,
                d,
                stored: stored.clone(),
            });
        }
    }

    if !queue_rows.is_empty() {
        let iids: Vec<&str> = queue_rows.iter().map(|r| r.0).collect();
        let ends: Vec<i64> = queue_rows.iter().map(|r| r.1).collect();
        let qseqs: Vec<i64> = queue_rows.iter().map(|r| r.2).collect();
        execute(
            c,
            "INSERT INTO batch_queue (integration_id, ended_at, event_seq)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[]) ON CONFLICT DO NOTHING",
            &[&iids, &ends, &qseqs],
        )
        .await?;
    }
    if new_deliveries.is_empty() {
        return Ok(outs);
    }

    // Calls whose ordered deliveries already have one open: later ones line up behind it.
    let ordered: Vec<(&str, &str)> = new_deliveries
        .iter()
        .filter(|p| p.d.ordered && !p.d.held)
        .map(|p| (p.d.integration_id.as_str(), p.stored.event.call_id.as_str()))
        .collect();
    let mut open: HashSet<(String, String)> = HashSet::new();
    if !ordered.is_empty() {
        let (oi, oc): (Vec<&str>, Vec<&str>) = ordered.into_iter().unzip();
        for r in query(
            c,
            "SELECT DISTINCT d.integration_id, d.call_id FROM deliveries d
             JOIN unnest($1::text[], $2::text[]) AS u(i, c) ON d.integration_id = u.i AND d.call_id = u.c
             WHERE d.ordered AND d.status IN ('pending', 'blocked')",
            &[&oi, &oc],
        )
        .await?
        {
            open.insert((r.get(0), r.get(1)));
        }
    }

    let m = new_deliveries.len();
    let mut cols = DeliveryColumns::with_capacity(m);
    for p in &new_deliveries {
        let (d, batch, out) = (p.d, batches[p.request], &mut outs[p.request]);
        let call_id = &p.stored.event.call_id;
        let status = if d.held {
            DeliveryStatus::Held
        } else if d.ordered && !open.insert((d.integration_id.clone(), call_id.clone())) {
            DeliveryStatus::Blocked
        } else {
            DeliveryStatus::Pending
        };
        let not_before = crate::store::shared::not_before(d, batch.not_before);
        let leased = status == DeliveryStatus::Pending && not_before.is_none() && !d.defer;
        if !leased && status == DeliveryStatus::Pending {
            out.scheduled
                .push((d.integration_id.clone(), not_before.unwrap_or(batch.now)));
        }
        cols.push(
            d,
            &p.stored,
            status,
            (batch.now, not_before.unwrap_or(batch.now)),
            leased.then_some(&batch.lease),
        );
        if leased {
            out.ready.push(DispatchJob {
                head: fresh_head(
                    d.id.clone(),
                    d.integration_id.clone(),
                    call_id.clone(),
                    d.trigger,
                    d.ordered,
                    batch.now,
                ),
                event: p.stored.clone(),
            });
        }
    }
    cols.insert(c).await?;
    Ok(outs)
}

/// New delivery rows, column by column, for one `INSERT … SELECT FROM unnest`.
pub(super) struct DeliveryColumns<'a> {
    ids: Vec<&'a str>,
    integrations: Vec<&'a str>,
    tenants: Vec<&'a str>,
    seqs: Vec<i64>,
    calls: Vec<&'a str>,
    triggers: Vec<&'static str>,
    ordered: Vec<bool>,
    statuses: Vec<&'static str>,
    created: Vec<i64>,
    due: Vec<i64>,
    owners: Vec<Option<&'a str>>,
    until: Vec<Option<i64>>,
}

impl<'a> DeliveryColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        DeliveryColumns {
            ids: Vec::with_capacity(n),
            integrations: Vec::with_capacity(n),
            tenants: Vec::with_capacity(n),
            seqs: Vec::with_capacity(n),
            calls: Vec::with_capacity(n),
            triggers: Vec::with_capacity(n),
            ordered: Vec::with_capacity(n),
            statuses: Vec::with_capacity(n),
            created: Vec::with_capacity(n),
            due: Vec::with_capacity(n),
            owners: Vec::with_capacity(n),
            until: Vec::with_capacity(n),
        }
    }

    fn push(
        &mut self,
        d: &'a NewDelivery,
        stored: &'a StoredEvent,
        status: DeliveryStatus,
        (created, due): (i64, i64),
        lease: Option<&'a Lease>,
    ) {
        self.ids.push(&d.id);
        self.integrations.push(&d.integration_id);
        self.tenants.push(&stored.event.tenant_id);
        self.seqs.push(stored.seq);
        self.calls.push(&stored.event.call_id);
        self.triggers.push(d.trigger.as_str());
        self.ordered.push(d.ordered);
        self.statuses.push(status.as_str());
        self.created.push(created);
        self.due.push(due);
        self.owners.push(lease.map(|l| l.owner.as_ref()));
        self.until.push(lease.map(|l| l.until));
    }

    async fn insert<C: GenericClient>(&self, c: &C) -> PgResult<()> {
        execute(
            c,
            "INSERT INTO deliveries (id, integration_id, tenant_id, event_seq, call_id, trigger, ordered,
                status, next_attempt_at, lease_owner, lease_until, created_at, updated_at)
             SELECT id, iid, tid, seq, cid, trg, ord, st, due, own, unt, cre, cre
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],
                         $7::bool[], $8::text[], $9::int8[], $10::text[], $11::int8[], $12::int8[])
                  AS u(id, iid, tid, seq, cid, trg, ord, st, due, own, unt, cre)",
            &[
                &self.ids,
                &self.integrations,
                &self.tenants,
                &self.seqs,
                &self.calls,
                &self.triggers,
                &self.ordered,
                &self.statuses,
                &self.due,
                &self.owners,
                &self.until,
                &self.created,
            ],
        )
        .await?;
        Ok(())
    }
}
