//! The storage contract, tested directly on the store: ordering hand-over, leases and claims,
//! resequencing on enable. Written against `DynStore` so every backend runs the same checks.

use std::sync::Arc;

use callhook::model::event::{parse_event, EventKind};
use callhook::store::*;
use serde_json::json;

pub(crate) async fn store() -> (DynStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let url = crate::support::store_url(dir.path()).await;
    (callhook::store::open(&url).await.expect("open"), dir)
}

pub(crate) fn lease(owner: &str, until: i64) -> Lease {
    Lease {
        owner: Arc::from(owner),
        until,
    }
}

pub(crate) fn item(id: &str, call: &str, deliveries: Vec<NewDelivery>) -> IngestItem {
    // Not a call state: those also pass the call-progress filter, which is tested on its own.
    let event = parse_event(json!({"id": id, "type": "ivr.input", "tenant_id": "t", "occurred_at": "2026-11-22T10:00:00Z",
        "call_id": call, "data": {"dtmf": "1"}}))
    .expect("event");
    IngestItem {
        body: event.canonical_json(),
        event,
        deliveries,
        batch: Vec::new(),
    }
}

pub(crate) fn delivery(id: &str, ordered: bool, held: bool) -> NewDelivery {
    NewDelivery {
        id: id.into(),
        integration_id: "i1".into(),
        trigger: EventKind::CallState,
        ordered,
        held,
        defer: false,
        not_before: None,
    }
}

/// A disabled integration `i1` of tenant `t`, failing since `failing_since`.
pub(crate) fn disabled_integration(failing_since: Option<i64>) -> IntegrationRecord {
    IntegrationRecord {
        id: "i1".into(),
        tenant_id: Some("t".into()),
        partner_id: None,
        spec_json: "{}".into(),
        status: IntegrationStatus::Disabled,
        disabled_reason: Some("x".into()),
        secret_sealed: None,
        secret_hint: None,
        signing_sealed: vec![],
        failing_since,
        consecutive_failures: 3,
        created_at: 0,
        updated_at: 0,
    }
}

pub(crate) fn outcome(job: &DispatchJob, next: NextStep, now: i64) -> Outcome {
    Outcome {
        head: job.head.clone(),
        attempt: None,
        next,
        now,
    }
}

pub(crate) fn ids(jobs: &[DispatchJob]) -> Vec<&str> {
    jobs.iter().map(|j| j.head.id.as_str()).collect()
}

#[tokio::test]
async fn ordered_deliveries_wait_for_the_earlier_one_of_their_call() {
    let (s, _d) = store().await;
    let batch = IngestBatch {
        items: vec![
            item("e1", "c1", vec![delivery("d1", true, false)]),
            item("e2", "c1", vec![delivery("d2", true, false)]),
            item("e3", "c1", vec![delivery("d3", true, false)]),
            item("e4", "c2", vec![delivery("d4", true, false)]),
            item("e1", "c1", vec![delivery("dup", true, false)]),
        ],
        lease: lease("n", 10_000),
        now: 1000,
        not_before: None,
        config_version: None,
    };
    let out = s.ingest(batch).await.expect("ingest");
    assert_eq!((out.accepted, out.duplicates), (4, 1));
    assert_eq!(
        ids(&out.ready),
        ["d1", "d4"],
        "only the first of each call is ready"
    );

    let promoted = s
        .record(
            vec![outcome(&out.ready[0], NextStep::Succeeded, 1100)],
            lease("n", 20_000),
        )
        .await
        .expect("record");
    assert_eq!(ids(&promoted), ["d2"]);
    // A retry keeps the call's place: nothing is promoted behind it.
    let again = s
        .record(
            vec![outcome(
                &promoted[0],
                NextStep::Retry {
                    at: 5000,
                    keep_lease: true,
                },
                1200,
            )],
            lease("n", 20_000),
        )
        .await
        .expect("record");
    assert!(again.is_empty());
    let given_up = s
        .record(
            vec![outcome(&promoted[0], NextStep::Failed, 5100)],
            lease("n", 20_000),
        )
        .await
        .expect("record");
    assert_eq!(ids(&given_up), ["d3"]);
    assert_eq!(given_up[0].event.event.id, "e3");
}

#[tokio::test]
async fn claims_take_only_due_work_whose_lease_is_free() {
    let (s, _d) = store().await;
    let out = s
        .ingest(IngestBatch {
            items: vec![
                item("e1", "c1", vec![delivery("d1", false, false)]),
                item("e2", "c2", vec![delivery("d2", false, false)]),
            ],
            lease: lease("a", 10_000),
            now: 1000,
            not_before: None,
            config_version: None,
        })
        .await
        .expect("ingest");
    assert_eq!(out.ready.len(), 2);
    assert!(
        s.claim_due("i1", 10, lease("b", 20_000), 2000, false)
            .await
            .expect("claim")
            .is_empty(),
        "leased to a"
    );
    assert_eq!(s.next_due_at("i1").await.expect("due"), Some(10_000));
    // d1 waits for a retry far away and gives its lease up.
    s.record(
        vec![outcome(
            &out.ready[0],
            NextStep::Retry {
                at: 50_000,
                keep_lease: false,
            },
            2000,
        )],
        lease("a", 12_000),
    )
    .await
    .expect("record");
    let claimed = s
        .claim_due("i1", 10, lease("b", 60_000), 11_000, false)
        .await
        .expect("claim");
    assert_eq!(
        ids(&claimed),
        ["d2"],
        "d2's lease expired at 10 000; d1 is not due"
    );
    assert_eq!(s.next_due_at("i1").await.expect("due"), Some(50_000));
    let claimed = s
        .claim_due("i1", 10, lease("b", 120_000), 50_000, false)
        .await
        .expect("claim");
    assert_eq!(ids(&claimed), ["d1"]);
    assert_eq!(claimed[0].head.retries_used, 1);
    assert_eq!(
        s.recover(50_000, 10_000).await.expect("recover"),
        2,
        "a restart frees every lease"
    );
}

#[tokio::test]
async fn enabling_resends_held_work_one_delivery_per_call_at_a_time() {
    let (s, _d) = store().await;
    s.insert_integration(disabled_integration(Some(0)), None)
        .await
        .expect("insert");
    s.ingest(IngestBatch {
        items: vec![
            item("e1", "c1", vec![delivery("d1", true, true)]),
            item("e2", "c1", vec![delivery("d2", true, true)]),
            item("e3", "c2", vec![delivery("d3", true, true)]),
            item("e4", "c3", vec![delivery("d4", false, true)]),
        ],
        lease: lease("a", 10_000),
        now: 1000,
        not_before: None,
        config_version: None,
    })
    .await
    .expect("ingest");
    assert_eq!(
        s.enable_integration("i1", true, 2000)
            .await
            .expect("enable"),
        4
    );
    let ready = s
        .claim_due("i1", 10, lease("a", 90_000), 3000, false)
        .await
        .expect("claim");
    assert_eq!(ids(&ready), ["d1", "d3", "d4"], "d2 waits behind d1");
    let next = s
        .record(
            vec![outcome(&ready[0], NextStep::Succeeded, 3100)],
            lease("a", 90_000),
        )
        .await
        .expect("record");
    assert_eq!(ids(&next), ["d2"]);
    let loaded = s.load_integrations().await.expect("load");
    assert_eq!(
        (
            loaded[0].status,
            loaded[0].failing_since,
            loaded[0].consecutive_failures
        ),
        (IntegrationStatus::Active, None, 0)
    );
}

#[tokio::test]
async fn retention_removes_old_settled_work_and_files_but_never_pending_work() {
    let (s, dir) = store().await;
    let day = 24 * 3600 * 1000;
    let old = callhook::time::now_ms() - 3 * day;
    let new = callhook::time::now_ms();
    // Ids are ULIDs of their creation time, as the ingest stage makes them.
    let id_at = |ms: i64, n: u8| {
        format!(
            "dlv_{}",
            ulid::Ulid::from_parts(ms as u64 + n as u64, 0)
                .to_string()
                .to_ascii_lowercase()
        )
    };
    let out = s
        .ingest(IngestBatch {
            items: vec![
                item(
                    "old-done",
                    "c1",
                    vec![delivery(&id_at(old, 1), false, false)],
                ),
                item(
                    "old-pending",
                    "c2",
                    vec![delivery(&id_at(old, 2), false, false)],
                ),
            ],
            lease: lease("a", old + 1000),
            now: old,
            not_before: None,
            config_version: None,
        })
        .await
        .expect("ingest");
    s.record(
        vec![outcome(&out.ready[0], NextStep::Succeeded, old + 10)],
        lease("a", old + 1000),
    )
    .await
    .expect("record");
    s.ingest(IngestBatch {
        items: vec![item(
            "new",
            "c3",
            vec![delivery(&id_at(new, 3), false, false)],
        )],
        lease: lease("a", new + 1000),
        now: new,
        not_before: None,
        config_version: None,
    })
    .await
    .expect("ingest");
    let files = dir.path().join("files");
    for (file, at) in [("old-file", old), ("new-file", new)] {
        let path = callhook::retention::recording_path(&files, "t", file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(&path, b"RIFF").expect("file");
        s.put_recording(RecordingMeta {
            file_id: file.into(),
            tenant_id: "t".into(),
            content_type: "audio/wav".into(),
            bytes: 4,
            sha256: String::new(),
            created_at: at,
        })
        .await
        .expect("meta");
    }

    let report = callhook::retention::purge_before(&s, &files, new - day)
        .await
        .expect("purge");
    assert_eq!(
        (report.deliveries, report.events, report.recordings.len()),
        (1, 1, 1)
    );
    assert!(!callhook::retention::recording_path(&files, "t", "old-file").exists());
    assert!(callhook::retention::recording_path(&files, "t", "new-file").exists());
    assert!(s
        .get_recording("t", "old-file")
        .await
        .expect("get")
        .is_none());
    // The old pending delivery and its event survive, and can still be sent.
    s.recover(new, 10_000).await.expect("recover");
    let claimed = s
        .claim_due("i1", 10, lease("b", new + 60_000), new, false)
        .await
        .expect("claim");
    let mut ids: Vec<&str> = claimed.iter().map(|j| j.event.event.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["new", "old-pending"]);
    assert_eq!(
        s.purge(new - day, 10).await.expect("again"),
        PurgeReport::default(),
        "nothing more to remove"
    );
}

pub fn cdr_item(id: &str, ended: &str, batch_to: &str) -> IngestItem {
    let event = parse_event(
        json!({"id": id, "type": "call.completed", "tenant_id": "t", "occurred_at": ended,
        "call_id": id, "data": {"ended_at": ended}}),
    )
    .expect("event");
    IngestItem {
        body: event.canonical_json(),
        event,
        deliveries: vec![],
        batch: vec![batch_to.into()],
    }
}

pub fn window_at(boundary: i64) -> BatchWindow {
    BatchWindow {
        integration_id: "b1".into(),
        owner: "t".into(),
        boundary,
        cutoff: boundary,
        window_start: boundary - 60_000,
        feed: None,
        render_item: ItemRenderer::new(|e| {
            callhook::render::cdr::batch_item(e, &Default::default())
        }),
        lease: lease("n", boundary + 600_000),
        now: boundary,
    }
}

#[tokio::test]
async fn a_batch_window_closes_once_even_across_a_restart_and_late_calls_wait_for_the_next() {
    let dir = tempfile::tempdir().expect("dir");
    let url = crate::support::store_url(dir.path()).await;
    let t = |s: &str| callhook::time::parse_rfc3339_ms(s).unwrap_or_default();
    {
        let s = callhook::store::open(&url).await.expect("open");
        s.ingest(IngestBatch {
            items: vec![
                cdr_item("early", "2026-11-22T10:00:30Z", "b1"),
                cdr_item("after-cutoff", "2026-11-22T10:01:30Z", "b1"),
            ],
            lease: lease("n", 0),
            now: t("2026-11-22T10:01:40Z"),
            not_before: None,
            config_version: None,
        })
        .await
        .expect("ingest");
        let parts = s
            .close_window(window_at(t("2026-11-22T10:01:00Z")))
            .await
            .expect("close");
        assert_eq!(parts.len(), 1);
        let items = parts[0].event.event.data["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            items
                .iter()
                .map(|i| i["id"].as_str().unwrap_or_default())
                .collect::<Vec<_>>(),
            ["early"]
        );
        assert!(
            s.close_window(window_at(t("2026-11-22T10:01:00Z")))
                .await
                .expect("again")
                .is_empty(),
            "not doubled"
        );
    }
    // After a restart: the same boundary stays closed; a late call and the one after the cutoff
    // go with the next window.
    let s = callhook::store::open(&url).await.expect("reopen");
    assert!(s
        .close_window(window_at(t("2026-11-22T10:01:00Z")))
        .await
        .expect("close")
        .is_empty());
    s.ingest(IngestBatch {
        items: vec![cdr_item("late", "2026-11-22T10:00:10Z", "b1")],
        lease: lease("n", 0),
        now: t("2026-11-22T10:02:30Z"),
        not_before: None,
        config_version: None,
    })
    .await
    .expect("ingest");
    let parts = s
        .close_window(window_at(t("2026-11-22T10:03:00Z")))
        .await
        .expect("close");
    let mut ids: Vec<String> = parts[0].event.event.data["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["after-cutoff", "late"]);
    assert_eq!(parts[0].head.trigger, EventKind::CdrBatch);
}

#[tokio::test]
async fn re_enabling_a_large_backlog_queues_all_of_it_in_steps() {
    let (s, _d) = store().await;
    s.insert_integration(disabled_integration(None), None)
        .await
        .expect("insert");
    // More than two steps' worth, half of them ordered (two per call).
    let items: Vec<IngestItem> = (0..12_000)
        .map(|n| {
            item(
                &format!("e{n}"),
                &format!("c{}", n / 2),
                vec![delivery(&format!("d{n:05}"), n % 4 < 2, true)],
            )
        })
        .collect();
    s.ingest(IngestBatch {
        items,
        lease: lease("a", 0),
        now: 1000,
        not_before: None,
        config_version: None,
    })
    .await
    .expect("ingest");
    assert_eq!(
        s.enable_integration("i1", true, 2000)
            .await
            .expect("enable"),
        12_000
    );
    let claimed = s
        .claim_due("i1", 20_000, lease("a", 90_000), 3000, false)
        .await
        .expect("claim");
    // Every unordered delivery, and the first of each ordered call: 6 000 + 3 000.
    assert_eq!(claimed.len(), 9_000);
    assert_eq!(
        s.load_integrations().await.expect("load")[0].status,
        IntegrationStatus::Active
    );
}

#[tokio::test]
async fn claiming_for_a_splicing_integration_skips_parsing_the_event() {
    let (s, _d) = store().await;
    s.ingest(IngestBatch {
        items: vec![item("e1", "c1", vec![delivery("d1", false, false)])],
        lease: lease("a", 1_000),
        now: 1000,
        not_before: None,
        config_version: None,
    })
    .await
    .expect("ingest");
    let jobs = s
        .claim_due("i1", 10, lease("b", 20_000), 2000, true)
        .await
        .expect("claim");
    assert_eq!(ids(&jobs), ["d1"]);
    let e = &jobs[0].event;
    assert!(e.event.data.is_empty(), "data is not parsed");
    assert_eq!(
        (e.event.id.as_str(), e.event.call_id.as_str(), e.event.kind),
        ("e1", "c1", EventKind::IvrInput)
    );
    assert!(e.body.contains("\"dtmf\""), "the body is whole: {}", e.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_request_does_not_take_the_requests_committed_with_it_down() {
    let (s, _d) = store().await;
    let batch = |event: &str, delivery_id: &str| IngestBatch {
        // Both requests of a round use one delivery id: only one of them can be stored.
        items: vec![item(
            event,
            event,
            vec![delivery(delivery_id, false, false)],
        )],
        lease: lease("n", 10_000),
        now: 1000,
        not_before: None,
        config_version: None,
    };
    // Submitted together, so the stores commit them in one group where they group writes.
    let mut results = Vec::new();
    for round in 0..5 {
        let (a, b, c) = tokio::join!(
            s.ingest(batch(&format!("ok-{round}"), &format!("same-{round}"))),
            s.ingest(batch(&format!("clash-{round}"), &format!("same-{round}"))),
            s.ingest(IngestBatch {
                items: vec![item(&format!("other-{round}"), "c", vec![])],
                lease: lease("n", 10_000),
                now: 1000,
                not_before: None,
                config_version: None,
            }),
        );
        results.push((a.is_ok(), b.is_ok(), c.map(|o| o.accepted)));
    }
    for (round, (a_stored, b_stored, c)) in results.into_iter().enumerate() {
        // Exactly one of the two clashing requests is stored (whichever ran first); the
        // unrelated one always is.
        assert!(a_stored != b_stored, "round {round}: {a_stored} {b_stored}");
        let c = c.ok();
        assert_eq!(
            c,
            Some(1),
            "round {round}: the unrelated request was stored"
        );
    }
}
