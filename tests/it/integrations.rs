use callhook::render::sign::verify;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_challenge_outcome_has_its_own_error_and_saves_nothing() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let spec = json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"], "delivery": {"timeout_ms": 1000}});
    for (reply, code) in [
        (ChallengeReply::Wrong, "challenge_mismatch"),
        (ChallengeReply::Status(500), "challenge_status"),
        (ChallengeReply::Hang, "challenge_timeout"),
    ] {
        rx.challenge(reply);
        let (st, v) = api
            .post("/v1/tenants/acme/integrations", spec.clone())
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some(code)),
            "{reply:?}: {v}"
        );
    }
    let (_, list) = api.get("/v1/tenants/acme/integrations").await;
    assert_eq!(
        list["items"],
        json!([]),
        "failed saves leave nothing behind"
    );

    let closed = format!("http://127.0.0.1:{}/hook", free_port());
    let (st, v) = api
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "n", "url": closed, "event_types": ["ivr.input"]}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("challenge_status")),
        "{v}"
    );

    rx.challenge(ChallengeReply::Echo);
    let v = api.integration("acme", spec.clone()).await;
    let iid = v["id"].as_str().unwrap_or_default();
    // Changing the URL challenges again; a failing endpoint keeps the old settings.
    rx.challenge(ChallengeReply::Wrong);
    let other = Receiver::start().await;
    other.challenge(ChallengeReply::Wrong);
    let (st, v) = api
        .patch(
            &format!("/v1/tenants/acme/integrations/{iid}"),
            json!({"url": other.url}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("challenge_mismatch"))
    );
    let (_, v) = api
        .get(&format!("/v1/tenants/acme/integrations/{iid}"))
        .await;
    assert_eq!(v["url"], json!(rx.url));
    // A change that does not touch url or headers needs no new challenge.
    let (st, v) = api
        .patch(
            &format!("/v1/tenants/acme/integrations/{iid}"),
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!((st, v["name"].as_str()), (200, Some("renamed")));
    // The additional payload goes out with the challenge token (seed 001), and the secret with
    // it: changing either challenges again.
    for patch in [
        json!({"custom_data": {"params_key": "new"}}),
        json!({"secret": "a-new-secret-1234"}),
    ] {
        let (st, v) = api
            .patch(
                &format!("/v1/tenants/acme/integrations/{iid}"),
                patch.clone(),
            )
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("challenge_mismatch")),
            "{patch}"
        );
    }
    let (st, v) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/verify"),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("challenge_mismatch"))
    );
    server.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ssrf_form_is_refused_at_save() {
    let server = TestServer::start_with(|c| {
        c.allow_insecure_http = false;
        c.allow_private_destinations = false;
    })
    .await;
    let api = server.tenant("acme").await;
    let mut urls: Vec<String> = [
        "http://crm.example.com/hook",
        "https://127.0.0.1/",
        "https://127.1/",
        "https://2130706433/",
        "https://0x7f.0.0.1/",
        "https://0177.0.0.01/",
        "https://0.0.0.0/",
        "https://10.0.0.8/",
        "https://172.31.255.1/",
        "https://192.168.0.10/",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.100.100.200/",
        "https://224.0.0.251/",
        "https://[::1]/",
        "https://[::]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://localhost/",
        "https://LOCALHOST./",
        "https://admin.localhost/",
        "https://user:pass@crm.example.com/",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Names that resolve to loopback through the system resolver (from /etc/hosts).
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    for line in hosts.lines().filter(|l| l.starts_with("127.")) {
        for name in line
            .split_whitespace()
            .skip(1)
            .filter(|n| !n.contains("localhost"))
        {
            urls.push(format!("https://{name}/"));
        }
    }
    for url in urls {
        let (st, v) = api
            .post(
                "/v1/tenants/acme/integrations",
                json!({"name": "n", "url": url, "event_types": ["ivr.input"]}),
            )
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("invalid_url")),
            "{url}: {v}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_validated_and_bad_ones_change_nothing() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let base = json!({"name": "n", "url": rx.url, "event_types": ["call.completed"]});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, needle) in [
        (with("headers", json!({"User-Agent": "x"})), "User-Agent"),
        (with("headers", json!({"webhook-id": "x"})), "webhook-id"),
        (
            json!({"name": "n", "url": rx.url, "event_types": ["call.completed"], "headers": {"Authorization": "x"}, "secret": "longenough"}),
            "Authorization",
        ),
        (with("event_types", json!([])), "event_types"),
        (
            with("event_types", json!(["call.exploded"])),
            "call.exploded",
        ),
        (with("profile", json!("nonexistent")), "nonexistent"),
        (
            with(
                "filters",
                json!({"conditions": [{"field": "did.nmbr", "op": "eq", "value": "+44"}]}),
            ),
            "did.nmbr",
        ),
        (
            with(
                "filters",
                json!({"conditions": [{"field": "scope", "op": "in", "value": "external"}]}),
            ),
            "array",
        ),
        (
            with("filters", json!({"users": {"mode": "specific"}})),
            "ids",
        ),
        (
            with(
                "delivery",
                json!({"retry": {"policy": "linear", "retries": 11}}),
            ),
            "0–10",
        ),
        (with("delivery", json!({"timeout_ms": 60000})), "timeout_ms"),
        (
            with(
                "privacy",
                json!({"remote_number": {"action": "mask", "digits": 16}}),
            ),
            "digits",
        ),
        (with("unknown_setting", json!(1)), "unknown_setting"),
        (with("secret", json!("short")), "secret"),
    ] {
        let (st, v) = api
            .post("/v1/tenants/acme/integrations", body.clone())
            .await;
        assert_eq!(st, 422, "{body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{needle} not in {v}"
        );
    }
    let v = api.integration("acme", base.clone()).await;
    let iid = v["id"].as_str().unwrap_or_default();
    let (st, _) = api
        .patch(
            &format!("/v1/tenants/acme/integrations/{iid}"),
            json!({"delivery": {"timeout_ms": 5}}),
        )
        .await;
    assert_eq!(st, 422);
    let (_, now) = api
        .get(&format!("/v1/tenants/acme/integrations/{iid}"))
        .await;
    assert_eq!(
        now["delivery"]["timeout_ms"], 10000,
        "a refused patch changes nothing"
    );
    assert_eq!(
        api.get("/v1/tenants/acme/integrations").await.1["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_exceed_max_integrations() {
    let server = TestServer::start().await;
    let admin = server.admin();
    admin
        .post(
            "/v1/tenants",
            json!({"id": "small", "name": "Small", "max_integrations": 1}),
        )
        .await;
    let rx = Receiver::start().await;
    let spec =
        json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"], "verification": "none"});
    assert_eq!(
        admin
            .post("/v1/tenants/small/integrations", spec.clone())
            .await
            .0,
        201
    );
    let (st, v) = admin
        .post("/v1/tenants/small/integrations", spec.clone())
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("integration_limit"))
    );
    let (st, _) = admin
        .patch("/v1/tenants/small", json!({"max_integrations": 2}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        admin.post("/v1/tenants/small/integrations", spec).await.0,
        201
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_signs_with_both_secrets_and_edits_apply_to_the_next_event() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    let v = api
        .integration(
            "acme",
            json!({"name": "n", "url": rx.url, "event_types": ["ivr.input"]}),
        )
        .await;
    let iid = v["id"].as_str().unwrap_or_default().to_string();
    let old = v["signing_secret"].as_str().unwrap_or_default().to_string();
    let (st, r) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/rotate-signing-secret"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let new = r["signing_secret"].as_str().unwrap_or_default().to_string();
    assert_ne!(old, new);
    server
        .ingest(event("e1", "acme", "ivr.input", "c", json!({"dtmf": "1"})))
        .await;
    let got = rx.next(10).await;
    let (id, ts, sig) = (
        got.header("webhook-id"),
        got.header("webhook-timestamp").parse().unwrap_or(0),
        got.header("webhook-signature"),
    );
    assert_eq!(sig.split(' ').count(), 2);
    assert!(verify(&old, &id, ts, &got.body, &sig) && verify(&new, &id, ts, &got.body, &sig));
    // And as a receiver checks it with the official Standard Webhooks library, holding either
    // secret during the rotation; a third secret fails.
    for (secret, ok) in [
        (old.as_str(), true),
        (new.as_str(), true),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false),
    ] {
        let wh = standardwebhooks::Webhook::new(secret).expect("secret");
        assert_eq!(wh.verify(&got.body, &got.headers).is_ok(), ok, "{secret}");
    }

    // Disabled by a person: the very next event is held, not sent.
    let (st, _) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/disable"),
            json!({"reason": "maintenance"}),
        )
        .await;
    assert_eq!(st, 200);
    server
        .ingest(event("e2", "acme", "ivr.input", "c", json!({"dtmf": "2"})))
        .await;
    api.wait_for_deliveries("acme", &iid, "held", 1).await;
    // A header edit applies to the next event after re-enabling.
    api.post(
        &format!("/v1/tenants/acme/integrations/{iid}/enable"),
        json!({"resend": false}),
    )
    .await;
    let (st, _) = api
        .patch(
            &format!("/v1/tenants/acme/integrations/{iid}"),
            json!({"headers": {"X-Version": "2"}}),
        )
        .await;
    assert_eq!(st, 200);
    server
        .ingest(event("e3", "acme", "ivr.input", "c", json!({"dtmf": "3"})))
        .await;
    let got = rx.next(10).await;
    assert_eq!(
        (got.json()["id"].as_str(), got.header("x-version").as_str()),
        (Some("e3"), "2")
    );
    let (st, _) = api
        .delete(&format!("/v1/tenants/acme/integrations/{iid}"))
        .await;
    assert_eq!(st, 204);
    assert_eq!(
        api.get(&format!("/v1/tenants/acme/integrations/{iid}"))
            .await
            .0,
        404
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_defaults_of_each_profile_are_the_seeds_and_the_answer_says_them() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let rx = Receiver::start().await;
    for (profile, kinds, policy, retries) in [
        (
            "recording.v2",
            json!(["recording.completed"]),
            "exponential",
            10,
        ),
        ("cdr", json!(["call.completed"]), "linear", 1),
    ] {
        let created = api
            .integration(
                "acme",
                json!({"name": profile, "url": rx.url, "profile": profile, "event_types": kinds}),
            )
            .await;
        assert_eq!(
            (
                created["delivery"]["retry"]["policy"].as_str(),
                created["delivery"]["retry"]["retries"].as_u64()
            ),
            (Some(policy), Some(retries)),
            "{profile}: {created}"
        );
    }
}
