//! The hot path on PostgreSQL: ingest, attempt outcomes, claims, ordered hand-over, windows and
//! node take-over. Rows go in and out in arrays (`unnest`), one statement per kind of row, so a
//! request of fifty events costs a handful of round trips, not hundreds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::progress::{self, Advance};
use super::{execute, lock_key, lock_keys, query, query_opt, PgResult};
use crate::ingest::from_states::{TerminatedCall, DERIVED_CDR_PREFIX};
use crate::model::event::{parse_stored, Event, EventKind, StoredEvent};
use crate::store::shared::{cdr_keys, fresh_head, BATCH_WINDOW_ITEMS};
use crate::store::*;

/// A delivery taken for sending, before its event is attached: (head, event seq).
pub type Claimed = (DeliveryHead, i64);

const HEAD_COLS: &str =
    "id, integration_id, call_id, trigger, ordered, manual, attempts, retries_used, created_at, event_seq";

fn head_row(r: &Row) -> Claimed {
    (
        DeliveryHead {
            id: r.get(0),
            integration_id: r.get(1),
            call_id: r.get(2),
            trigger: EventKind::parse(r.get(3)).unwrap_or(EventKind::CallCompleted),
            ordered: r.get(4),
            manual: r.get(5),
            attempts: r.get::<_, i64>(6) as u32,
            retries_used: r.get::<_, i64>(7) as u32,
            created_at: r.get(8),
        },
        r.get(9),
    )
}

/// The lock serialising everything that looks at one call of a tenant (its progress, whether
/// the source sent its own record).
fn call_lock(tenant_id: &str, call_id: &str) -> i64 {
    lock_key("call", tenant_id, call_id)
}

/// The lock serialising the ordered deliveries of one call to one integration.
fn order_lock(integration_id: &str, call_id: &str) -> i64 {
    lock_key("order", integration_id, call_id)
}

/// Attaches each head's event, loading each event once. With `body_only` the events carry
/// their envelope and stored body but unparsed `data` (see [`Store::claim_due`]).
pub async fn jobs_with_events<C: GenericClient>(
    c: &C,
    heads: Vec<Claimed>,
    body_only: bool,
) -> PgResult<Vec<DispatchJob>> {
    if heads.is_empty() {
        return Ok(Vec::new());
    }
    let seqs: Vec<i64> = heads.iter().map(|(_, s)| *s).collect();
    let events = load_events(c, seqs, body_only).await?;
    heads
        .into_iter()
        .map(|(head, seq)| {
            Ok(DispatchJob {
                head,
                event: event_of(&events, seq)?,
            })
        })
        .collect()
}

fn event_of(events: &HashMap<i64, Arc<StoredEvent>>, seq: i64) -> PgResult<Arc<StoredEvent>> {
    events
        .get(&seq)
        .cloned()
        .ok_or_else(|| StoreError::Internal(format!("event {seq} of a delivery is gone")).into())
}

/// Loads events by seq in one query.
async fn load_events<C: GenericClient>(
    c: &C,
    mut seqs: Vec<i64>,
    body_only: bool,
) -> PgResult<HashMap<i64, Arc<StoredEvent>>> {
    seqs.sort_unstable();
    seqs.dedup();
    let rows = query(
        c,
        "SELECT seq, body, id, type, tenant_id, call_id, occurred_at FROM events WHERE seq = ANY($1)",
        &[&seqs],
    )
    .await?;
    let mut events: HashMap<i64, Arc<StoredEvent>> = HashMap::with_capacity(rows.len());
    for r in rows {
        let seq: i64 = r.get(0);
        let body: String = r.get(1);
        let event = if body_only {
            let kind: &str = r.get(3);
            Event {
                id: r.get(2),
                kind: EventKind::parse(kind).ok_or_else(|| {
                    StoreError::Internal(format!("stored event {seq}: unknown type {kind}"))
                })?,
                tenant_id: r.get(4),
                call_id: r.get(5),
                occurred_at_ms: r.get(6),
                data: Default::default(),
            }
        } else {
            let value = serde_json::from_str(&body)
                .map_err(|e| StoreError::Internal(format!("stored event {seq}: {e}")))?;
            parse_stored(value)
                .map_err(|e| StoreError::Internal(format!("stored event {seq}: {e}")))?
        };
        events.insert(seq, Arc::new(StoredEvent { seq, event, body }));
    }
    Ok(events)
}

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
async fn store_routed<C: GenericClient>(
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
            match progress::advance(c, e, rank, state_seq, now).await? {
                Advance::Stale => {
                    out.stale += 1;
                    continue;
                }
                Advance::Moved => {}
                Advance::Terminated {
                    started_at,
                    answered_at,
                } => {
                    if !progress::has_source_record(c, e).await? {
                        out.terminated.push(TerminatedCall {
                            event: e.clone(),
                            started_at,
                            answered_at,
                        });
                    }
                }
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
        let leased = status == DeliveryStatus::Pending && batch.not_before.is_none() && !d.defer;
        if !leased && status == DeliveryStatus::Pending {
            out.scheduled.push(d.integration_id.clone());
        }
        cols.push(
            d,
            &p.stored,
            status,
            (batch.now, batch.not_before.unwrap_or(batch.now)),
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
struct DeliveryColumns<'a> {
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

/// Records outcomes; returns the deliveries promoted, each with the index of the outcome that
/// settled the delivery before it.
pub async fn record<C: GenericClient>(
    c: &C,
    outcomes: &[Outcome],
    lease: &Lease,
) -> PgResult<Vec<(usize, Claimed)>> {
    let settles = |o: &Outcome| matches!(o.next, NextStep::Succeeded | NextStep::Failed);
    let keys: Vec<i64> = outcomes
        .iter()
        .filter(|o| settles(o) && o.head.ordered && !o.head.manual)
        .map(|o| order_lock(&o.head.integration_id, &o.head.call_id))
        .collect();
    lock_keys(c, keys).await?;

    let with_attempt: Vec<&Outcome> = outcomes.iter().filter(|o| o.attempt.is_some()).collect();
    if !with_attempt.is_empty() {
        let mut a_ids = Vec::new();
        let mut a_nums = Vec::new();
        let mut a_started = Vec::new();
        let mut a_dur = Vec::new();
        let mut a_code = Vec::new();
        let mut a_class = Vec::new();
        let mut a_err = Vec::new();
        let mut a_excerpt = Vec::new();
        let mut a_manual = Vec::new();
        for o in &with_attempt {
            let Some(a) = &o.attempt else { continue };
            a_ids.push(o.head.id.as_str());
            a_nums.push(o.head.attempts as i64 + 1);
            a_started.push(a.started_at);
            a_dur.push(a.duration_ms as i64);
            a_code.push(a.status_code.map(i64::from));
            a_class.push(a.error_class);
            a_err.push(a.error.as_deref());
            a_excerpt.push(a.response_excerpt.as_deref());
            a_manual.push(o.head.manual);
        }
        execute(
            c,
            "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code,
                error_class, error, response_excerpt, manual)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[],
                                  $6::text[], $7::text[], $8::text[], $9::bool[])
             ON CONFLICT (delivery_id, attempt) DO UPDATE SET started_at = excluded.started_at,
                duration_ms = excluded.duration_ms, status_code = excluded.status_code,
                error_class = excluded.error_class, error = excluded.error,
                response_excerpt = excluded.response_excerpt, manual = excluded.manual",
            &[
                &a_ids, &a_nums, &a_started, &a_dur, &a_code, &a_class, &a_err, &a_excerpt,
                &a_manual,
            ],
        )
        .await?;
    }

    let n = outcomes.len();
    let mut ids = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut incs = Vec::with_capacity(n);
    let mut retries = Vec::with_capacity(n);
    let mut next_at = Vec::with_capacity(n);
    let mut owners: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut until: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut nows = Vec::with_capacity(n);
    let mut codes = Vec::with_capacity(n);
    let mut classes = Vec::with_capacity(n);
    for o in outcomes {
        let h = &o.head;
        let (status, at, keep, retries_used) = match o.next {
            NextStep::Succeeded => (DeliveryStatus::Succeeded, o.now, false, h.retries_used),
            NextStep::Failed => (DeliveryStatus::Failed, o.now, false, h.retries_used),
            NextStep::Held => (DeliveryStatus::Held, o.now, false, h.retries_used),
            NextStep::Retry { at, keep_lease } => {
                (DeliveryStatus::Pending, at, keep_lease, h.retries_used + 1)
            }
        };
        ids.push(h.id.as_str());
        statuses.push(status.as_str());
        incs.push(o.attempt.is_some() as i64);
        retries.push(retries_used as i64);
        next_at.push(at);
        owners.push(keep.then_some(lease.owner.as_ref()));
        until.push(keep.then_some(at + (lease.until - o.now).max(0)));
        nows.push(o.now);
        codes.push(
            o.attempt
                .as_ref()
                .and_then(|a| a.status_code)
                .map(i64::from),
        );
        classes.push(o.attempt.as_ref().and_then(|a| a.error_class));
    }
    // Rows are looked up by key (`d.id = ANY($1)`). "Still pending" is compared with a value
    // of the array, not a constant: with a constant the planner may read every open delivery
    // through the partial `deliveries_open` index instead, when its statistics lag behind a
    // fast-growing table (seen: 3 500 rows read to update 60).
    let changed: HashSet<String> = query(
        c,
        "UPDATE deliveries d SET status = u.st, attempts = d.attempts + u.inc, retries_used = u.ret,
            next_attempt_at = u.nxt, lease_owner = u.own, lease_until = u.unt, updated_at = u.now,
            last_status_code = COALESCE(u.code, d.last_status_code),
            last_error_class = CASE WHEN u.inc = 1 THEN u.cls ELSE d.last_error_class END
         FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::text[],
                     $7::int8[], $8::int8[], $9::int8[], $10::text[], $11::text[])
              AS u(id, st, inc, ret, nxt, own, unt, now, code, cls, expect)
         WHERE d.id = u.id AND d.id = ANY($1) AND d.status = u.expect
         RETURNING d.id",
        &[
            &ids, &statuses, &incs, &retries, &next_at, &owners, &until, &nows, &codes, &classes,
            &vec!["pending"; n],
        ],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();

    let mut promoted = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        let h = &o.head;
        if settles(o) && h.ordered && !h.manual && changed.contains(&h.id) {
            if let Some(next) = promote_next(c, &h.integration_id, &h.call_id, lease, o.now).await?
            {
                promoted.push((i, next));
            }
        }
    }
    Ok(promoted)
}

/// Makes the call's next blocked delivery pending (leased to this node) once nothing earlier
/// of the call is pending. The caller holds the call's order lock.
async fn promote_next<C: GenericClient>(
    c: &C,
    integration_id: &str,
    call_id: &str,
    lease: &Lease,
    now: i64,
) -> PgResult<Option<Claimed>> {
    let pending = query_opt(
        c,
        "SELECT 1 FROM deliveries WHERE integration_id = $1 AND call_id = $2 AND ordered
           AND status = 'pending' LIMIT 1",
        &[&integration_id, &call_id],
    )
    .await?;
    if pending.is_some() {
        return Ok(None);
    }
    let sql = format!(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, lease_owner = $4, lease_until = $5, updated_at = $3
         WHERE id = (SELECT id FROM deliveries WHERE integration_id = $1 AND call_id = $2 AND ordered
                     AND status = 'blocked' ORDER BY event_seq LIMIT 1)
         RETURNING {HEAD_COLS}"
    );
    Ok(query_opt(
        c,
        &sql,
        &[
            &integration_id,
            &call_id,
            &now,
            &lease.owner.as_ref(),
            &lease.until,
        ],
    )
    .await?
    .map(|r| head_row(&r)))
}

pub async fn claim_due<C: GenericClient>(
    c: &C,
    integration_id: &str,
    limit: u32,
    lease: &Lease,
    now: i64,
) -> PgResult<Vec<Claimed>> {
    // SKIP LOCKED: a row another node is claiming right now is left to it, not waited for.
    let expired = format!(
        "UPDATE deliveries SET lease_owner = $2, lease_until = $3
         WHERE id IN (SELECT id FROM deliveries WHERE integration_id = $1 AND status = 'pending'
                      AND lease_until IS NOT NULL AND lease_until < $4 AND next_attempt_at <= $4
                      ORDER BY lease_until LIMIT $5 FOR UPDATE SKIP LOCKED)
         RETURNING {HEAD_COLS}"
    );
    let unleased = format!(
        "UPDATE deliveries SET lease_owner = $2, lease_until = $3
         WHERE id IN (SELECT id FROM deliveries WHERE integration_id = $1 AND status = 'pending'
                      AND lease_until IS NULL AND next_attempt_at <= $4
                      ORDER BY next_attempt_at LIMIT $5 FOR UPDATE SKIP LOCKED)
         RETURNING {HEAD_COLS}"
    );
    let mut heads: Vec<Claimed> = Vec::new();
    for sql in [expired, unleased] {
        let room = limit.saturating_sub(heads.len() as u32) as i64;
        if room == 0 {
            break;
        }
        let rows = query(
            c,
            &sql,
            &[
                &integration_id,
                &lease.owner.as_ref(),
                &lease.until,
                &now,
                &room,
            ],
        )
        .await?;
        heads.extend(rows.iter().map(head_row));
    }
    heads.sort_by_key(|(_, seq)| *seq);
    Ok(heads)
}

pub async fn release<C: GenericClient>(c: &C, ids: &[String]) -> PgResult<()> {
    // By key, "still pending" compared with a value of the array (see `record`).
    execute(
        c,
        "UPDATE deliveries d SET lease_owner = NULL, lease_until = NULL
         FROM unnest($1::text[], $2::text[]) AS u(id, expect)
         WHERE d.id = u.id AND d.id = ANY($1) AND d.status = u.expect",
        &[&ids, &vec!["pending"; ids.len()]],
    )
    .await?;
    Ok(())
}

/// Records this node as alive; removes nodes silent for `dead_after_ms` and gives their
/// leases up. Returns the integrations whose work was given up.
pub async fn heartbeat<C: GenericClient>(
    c: &C,
    node: &str,
    now: i64,
    dead_after_ms: i64,
) -> PgResult<Vec<String>> {
    execute(
        c,
        "INSERT INTO nodes (id, started_at, heartbeat_at) VALUES ($1, $2, $2)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = $2",
        &[&node, &now],
    )
    .await?;
    let rows = query(
        c,
        "WITH dead AS (DELETE FROM nodes WHERE heartbeat_at < $1 RETURNING id)
         UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
         WHERE lease_owner IN (SELECT id FROM dead)
         RETURNING integration_id, status",
        &[&(now - dead_after_ms)],
    )
    .await?;
    let mut iids: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<_, &str>(1) == "pending")
        .map(|r| r.get(0))
        .collect();
    if !rows.is_empty() {
        tracing::warn!(
            deliveries = rows.len(),
            "took over the work of a node that stopped heartbeating"
        );
    }
    iids.sort();
    iids.dedup();
    Ok(iids)
}

/// Gives up every lease whose owner is not a node heartbeating since `alive_since`.
pub async fn release_dead<C: GenericClient>(c: &C, alive_since: i64) -> PgResult<u64> {
    execute(
        c,
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
         WHERE lease_owner IS NOT NULL
           AND lease_owner NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $1)",
        &[&alive_since],
    )
    .await
}

pub async fn enable_begin<C: GenericClient>(c: &C, id: &str) -> PgResult<Option<i64>> {
    query_opt(
        c,
        "SELECT failing_since FROM integrations WHERE id = $1",
        &[&id],
    )
    .await?
    .map(|r| r.get(0))
    .ok_or_else(|| StoreError::NotFound.into())
}

/// See the SQLite store's `enable_resend_step`.
pub async fn enable_resend_step<C: GenericClient>(
    c: &C,
    id: &str,
    since: i64,
    now: i64,
    limit: u32,
) -> PgResult<u64> {
    let limit = limit as i64;
    let mut changed = 0;
    for pick in [
        "SELECT id, ordered FROM deliveries WHERE status = 'held' AND integration_id = $1
           AND $2::int8 IS NOT NULL AND $3::int8 IS NOT NULL LIMIT $4",
        "SELECT id, ordered FROM deliveries WHERE status = 'failed' AND integration_id = $1
           AND next_attempt_at >= $2 AND next_attempt_at < $3 AND NOT manual LIMIT $4",
    ] {
        let rows = query(c, pick, &[&id, &since, &now, &limit]).await?;
        let (ordered, plain): (Vec<&Row>, Vec<&Row>) =
            rows.iter().partition(|r| r.get::<_, bool>(1));
        let ordered: Vec<String> = ordered.iter().map(|r| r.get(0)).collect();
        let plain: Vec<String> = plain.iter().map(|r| r.get(0)).collect();
        changed += execute(
            c,
            "UPDATE deliveries SET status = 'blocked', retries_used = 0, updated_at = $2 WHERE id = ANY($1)",
            &[&ordered, &now],
        )
        .await?;
        changed += execute(
            c,
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, retries_used = 0,
                lease_owner = NULL, lease_until = NULL, updated_at = $2 WHERE id = ANY($1)",
            &[&plain, &now],
        )
        .await?;
    }
    Ok(changed)
}

pub async fn enable_promote_step<C: GenericClient>(
    c: &C,
    id: &str,
    now: i64,
    limit: u32,
) -> PgResult<u64> {
    execute(
        c,
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, lease_owner = NULL, lease_until = NULL
         WHERE id IN (SELECT d.id FROM deliveries d WHERE d.integration_id = $1 AND d.ordered AND d.status = 'blocked'
           AND d.event_seq = (SELECT MIN(b.event_seq) FROM deliveries b WHERE b.integration_id = $1
                              AND b.call_id = d.call_id AND b.ordered AND b.status = 'blocked')
           AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.integration_id = $1
                           AND p.call_id = d.call_id AND p.ordered AND p.status = 'pending')
           LIMIT $3)",
        &[&id, &now, &(limit as i64)],
    )
    .await
}

pub async fn enable_finish<C: GenericClient>(c: &C, id: &str, now: i64) -> PgResult<()> {
    execute(
        c,
        "UPDATE integrations SET status = 'active', disabled_reason = NULL, failing_since = NULL,
            consecutive_failures = 0, updated_at = $2 WHERE id = $1",
        &[&id, &now],
    )
    .await?;
    Ok(())
}

pub async fn delivery_head<C: GenericClient>(c: &C, id: &str) -> PgResult<Option<Claimed>> {
    let sql = format!("SELECT {HEAD_COLS} FROM deliveries WHERE id = $1");
    Ok(query_opt(c, &sql, &[&id]).await?.map(|r| head_row(&r)))
}

pub async fn redeliver<C: GenericClient>(
    c: &C,
    id: &str,
    lease: &Lease,
    now: i64,
) -> PgResult<Claimed> {
    let status: String = query_opt(
        c,
        "SELECT status FROM deliveries WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?
    .map(|r| r.get(0))
    .ok_or(StoreError::NotFound)?;
    if status == "pending" || status == "blocked" {
        return Err(StoreError::Conflict(
            "the delivery is already queued; wait for its attempt, then redeliver".into(),
        )
        .into());
    }
    let sql = format!(
        "UPDATE deliveries SET status = 'pending', manual = true, ordered = false, retries_used = 0,
            next_attempt_at = $2, lease_owner = $3, lease_until = $4, updated_at = $2
         WHERE id = $1 RETURNING {HEAD_COLS}"
    );
    query_opt(c, &sql, &[&id, &now, &lease.owner.as_ref(), &lease.until])
        .await?
        .map(|r| head_row(&r))
        .ok_or_else(|| StoreError::NotFound.into())
}

pub async fn redeliver_failed<C: GenericClient>(
    c: &C,
    integration_id: &str,
    since: i64,
    until: i64,
    now: i64,
) -> PgResult<u64> {
    execute(
        c,
        "UPDATE deliveries SET status = 'pending', manual = true, ordered = false, retries_used = 0,
            next_attempt_at = $4, lease_owner = NULL, lease_until = NULL, updated_at = $4
         WHERE status = 'failed' AND integration_id = $1 AND created_at >= $2 AND created_at < $3",
        &[&integration_id, &since, &until, &now],
    )
    .await
}

/// Closes a batch window under the integration's window lock: a second node closing the same
/// boundary waits, then finds it closed.
pub async fn close_window<C: GenericClient>(c: &C, w: &BatchWindow) -> PgResult<Vec<Claimed>> {
    lock_keys(c, vec![lock_key("window", &w.integration_id, "")]).await?;
    let last: Option<i64> = query_opt(
        c,
        "SELECT last_boundary FROM batch_windows WHERE integration_id = $1",
        &[&w.integration_id],
    )
    .await?
    .map(|r| r.get(0));
    if last.is_some_and(|l| l >= w.boundary) {
        return Ok(Vec::new());
    }
    execute(
        c,
        "INSERT INTO batch_windows (integration_id, last_boundary) VALUES ($1, $2)
         ON CONFLICT (integration_id) DO UPDATE SET last_boundary = excluded.last_boundary",
        &[&w.integration_id, &w.boundary],
    )
    .await?;
    let mut queued: Vec<(i64, i64)> = query(
        c,
        "DELETE FROM batch_queue WHERE integration_id = $1 AND (ended_at, event_seq) IN (
            SELECT ended_at, event_seq FROM batch_queue WHERE integration_id = $1 AND ended_at < $2
            ORDER BY ended_at, event_seq LIMIT $3)
         RETURNING ended_at, event_seq",
        &[&w.integration_id, &w.cutoff, &(BATCH_WINDOW_ITEMS as i64)],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    queued.sort();
    let seqs: Vec<i64> = queued.iter().map(|(_, s)| *s).collect();
    let events = load_events(c, seqs.clone(), false).await?;
    let items = seqs
        .iter()
        .map(|s| {
            Ok(crate::render::cdr::batch_item(
                &event_of(&events, *s)?.event,
                &w.privacy,
            ))
        })
        .collect::<PgResult<Vec<serde_json::Value>>>()?;
    let mut out = Vec::new();
    for event in crate::store::shared::batch_parts(w, &items) {
        let seq: i64 = query(
            c,
            "INSERT INTO events (tenant_id, id, type, call_id, occurred_at, ingested_at, body)
             VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING seq",
            &[
                &event.tenant_id,
                &event.id,
                &event.kind.as_str(),
                &event.call_id,
                &w.now,
                &event.canonical_json(),
            ],
        )
        .await?
        .first()
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::Internal("batch event not stored".into()))?;
        let id = crate::ingest::new_id("dlv");
        execute(
            c,
            "INSERT INTO deliveries (id, integration_id, tenant_id, event_seq, call_id, trigger, ordered,
                status, next_attempt_at, lease_owner, lease_until, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'cdr.batch', false, 'pending', $6, $7, $8, $6, $6)",
            &[
                &id,
                &w.integration_id,
                &w.owner,
                &seq,
                &event.call_id,
                &w.now,
                &w.lease.owner.as_ref(),
                &w.lease.until,
            ],
        )
        .await?;
        out.push((
            fresh_head(
                id,
                w.integration_id.clone(),
                event.call_id,
                EventKind::CdrBatch,
                false,
                w.now,
            ),
            seq,
        ));
    }
    Ok(out)
}
