//! Deleting a tenant: its call data goes with it, in steps, and its id stays taken until then,
//! so a new tenant of the same id inherits nothing (no event replayed, no event id taken, no
//! call's progress, no delivery still on its way).

use callhook::model::tenancy::Tenant;
use callhook::store::*;
use serde_json::{json, Value};

use crate::store::{delivery, disabled_integration, ids, item, lease, outcome, store};
use crate::streams::{connect, next, path, state, stream_spec};
use crate::support::*;

fn tenant(id: &str) -> Tenant {
    Tenant {
        id: id.into(),
        name: id.into(),
        partner_id: None,
        max_integrations: None,
        created_at: 0,
        updated_at: 0,
    }
}

/// An event of tenant `tenant` with one delivery `d-<id>` to integration `i1`.
fn item_of(tenant: &str, id: &str) -> IngestItem {
    let mut it = item(
        id,
        &format!("c-{id}"),
        vec![delivery(&format!("d-{id}"), true, false)],
    );
    if tenant != "t" {
        let mut v: serde_json::Value = serde_json::from_str(&it.body).expect("body");
        v["tenant_id"] = json!(tenant);
        it.event = callhook::model::event::parse_event(v).expect("event");
        it.body = it.event.canonical_json();
    }
    it
}

#[tokio::test]
async fn a_deleted_tenants_id_stays_taken_until_its_call_data_is_gone_in_steps() {
    let (s, _d) = store().await;
    s.create_tenant(tenant("t")).await.expect("tenant");
    s.create_tenant(tenant("u")).await.expect("tenant");
    // A partner's feed sending both tenants' events: what it has of the deleted tenant goes,
    // sent or not, so nothing can be sent again without its event; the other tenant's stays.
    let mut feed = disabled_integration(None);
    (feed.tenant_id, feed.partner_id) = (None, Some("p".into()));
    feed.status = IntegrationStatus::Active;
    s.insert_integration(feed, None).await.expect("feed");
    let batch = |items: Vec<IngestItem>, now: i64| IngestBatch {
        items,
        lease: lease("n", now + 1_000),
        now,
        not_before: None,
        config_version: None,
    };
    let ours: Vec<IngestItem> = ["e1", "e2", "e3", "e4", "e5"]
        .iter()
        .map(|id| item_of("t", id))
        .collect();
    let out = s.ingest(batch(ours, 1_000)).await.expect("ingest");
    assert_eq!(out.accepted, 5);
    let failed = out
        .ready
        .iter()
        .find(|j| j.head.id == "d-e1")
        .expect("d-e1");
    s.record(
        vec![outcome(failed, NextStep::Failed, 1_500)],
        lease("n", 2_000),
    )
    .await
    .expect("record");
    let theirs = s
        .ingest(batch(vec![item_of("u", "x1")], 1_600))
        .await
        .expect("ingest");
    assert_eq!(theirs.accepted, 1);

    assert!(s.delete_tenant("t").await.expect("delete"));
    match s.create_tenant(tenant("t")).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("still being removed"), "{m}"),
        other => panic!("the id was free before the data was gone: {other:?}"),
    }
    let mut steps = 0;
    while s
        .purge_deleted_tenant(Some("t"), 2)
        .await
        .expect("purge")
        .is_some()
    {
        steps += 1;
        assert!(steps < 10, "the purge does not end");
    }
    assert_eq!(
        steps, 3,
        "5 events in steps of 2, the id freed with the last"
    );
    s.create_tenant(tenant("t"))
        .await
        .expect("the id is free again");

    let page = s
        .tail(Some("t"), Cursor::default(), 100)
        .await
        .expect("tail");
    assert!(page.items.is_empty(), "old events: {}", page.items.len());
    assert_eq!(
        s.redeliver_failed("i1", 0, i64::MAX, 50_000)
            .await
            .expect("resend"),
        0,
        "a failed delivery of a deleted event is queued again"
    );
    let claimed = s
        .claim_due("i1", 10, lease("m", 90_000), 50_000, false)
        .await
        .expect("claim: no delivery whose event is gone");
    // Claimed with its event loaded: the other tenant's event is still there. (Not read with
    // `tail`: on PostgreSQL that reads only as far as the oldest transaction still running in
    // the cluster, which another test's may hold back.)
    assert_eq!(
        ids(&claimed),
        ["d-x1"],
        "only the other tenant's delivery is left"
    );
    let again = s
        .ingest(batch(vec![item_of("t", "e1")], 60_000))
        .await
        .expect("ingest");
    assert_eq!(
        (again.accepted, again.duplicates),
        (1, 0),
        "old ids still taken"
    );
}

/// Through the server: the deleted tenant's events were the newest in the log (the store keeps
/// that place, emptied), and its call `c-1` was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tenant_of_a_deleted_tenants_id_inherits_none_of_its_call_data() {
    let server = TestServer::start().await;
    server.tenant("globex").await;
    server.tenant("acme").await;
    let other = event("g-1", "globex", "ivr.input", "c-g", json!({"dtmf": "1"}));
    assert_eq!(server.ingest(other).await.0, 202);
    let old: Vec<Value> = ["trying", "proceeding", "confirmed"]
        .iter()
        .enumerate()
        .map(|(n, s)| state(&format!("e-{n}"), "acme", "c-1", n as u64 + 1, s))
        .collect();
    let (st, v) = server.ingest(json!({"events": old})).await;
    assert_eq!((st, v["accepted"].as_u64()), (202, Some(3)), "{v}");

    assert_eq!(server.admin().delete("/v1/tenants/acme").await.0, 204);
    // The answer waited for the removal: the id is free at once.
    let acme = server.tenant("acme").await;
    let integ = acme.integration("acme", stream_spec(json!({}))).await;
    let iid = integ["id"].as_str().unwrap_or_default();
    let mut ws = connect(&server, &acme.token, &format!("{}?cursor=0.0", path(iid))).await;
    let first = next(&mut ws).await;
    assert_eq!(
        first["live"], true,
        "the old tenant's event replayed: {first}"
    );
    // The same event id and call: a new event of a new call, not a duplicate nor a stale state.
    let (st, v) = server
        .ingest(state("e-0", "acme", "c-1", 1, "trying"))
        .await;
    assert_eq!((st, v["accepted"].as_u64()), (202, Some(1)), "{v}");
    let m = next(&mut ws).await;
    assert_eq!(
        (
            m["event_id"].as_str(),
            m["payload"]["data"]["state"].as_str()
        ),
        (Some("e-0"), Some("trying")),
        "{m}"
    );
    server.stop().await;
}
