use callhook::render::sign::verify;
use callhook::security::links::Links;
use callhook::security::seal::Sealer;
use serde_json::json;
use std::time::Duration;

use crate::support::*;

const SEAL_KEY: [u8; 32] = [9; 32];

fn seal_key_b64() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(SEAL_KEY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_and_format_is_delivered_and_signed_over_the_bytes_sent() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let (cdr, states, history, form, get) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let cdr_i = api.integration("acme", json!({"name": "cdr", "url": cdr.url, "profile": "cdr", "event_types": ["call.completed"],
        "custom_data": {"hook": "post-call"}})).await;
    api.integration("acme", json!({"name": "states", "url": states.url, "profile": "call-state", "event_types": ["call.state"]})).await;
    api.integration("acme", json!({"name": "missed", "url": history.url, "profile": "call-history", "event_types": ["call.unanswered"],
        "custom_data": {"params_key": "k"}})).await;
    let form_i = api.integration("acme", json!({"name": "form", "url": form.url, "profile": "cdr", "event_types": ["call.completed"],
        "method": "PUT", "format": "form"})).await;
    let get_i = api
        .integration(
            "acme",
            json!({"name": "get", "url": format!("{}?token=abc", get.url), "profile": "cdr",
        "event_types": ["call.completed"], "method": "GET"}),
        )
        .await;

    let events = json!({"events": [
        event("cdr-1", "acme", "call.completed", "call-1", json!({"answered": false, "direction": "inbound", "scope": "external",
            "call_type": "incoming", "talk_ms": 0, "ring_ms": 12400, "caller": {"number": "+441610000001"}})),
        event("st-1", "acme", "call.state", "call-2", json!({"seq": 1, "state": "early", "direction": "outbound",
            "local": {"user_id": "u1", "device_type": "mobile"}})),
        event("st-ivr", "acme", "call.state", "call-3", json!({"seq": 1, "state": "early", "function": "ivr"})),
    ]});
    assert_eq!(server.ingest(events).await.0, 202);

    let got = cdr.next(10).await;
    let body = got.json();
    // Seed 002's triggerId is a GUID: the integration's id in that form, which the API takes
    // in place of the id.
    let guid = cdr_i["trigger_id"].as_str().unwrap_or_default().to_string();
    assert_eq!(body["triggerId"], json!(guid));
    assert_eq!(guid.len(), 36, "{guid}");
    let (status, by_guid) = api
        .get(&format!("/v1/tenants/acme/integrations/{guid}"))
        .await;
    assert_eq!((status, &by_guid["id"]), (200, &cdr_i["id"]));
    let (status, _) = api
        .get(&format!("/v1/tenants/acme/integrations/{guid}/deliveries"))
        .await;
    assert_eq!(
        status, 200,
        "deliveries of the integration named by its GUID"
    );
    let (status, renamed) = api
        .patch(
            &format!("/v1/tenants/acme/integrations/{guid}"),
            json!({"name": "cdr by guid"}),
        )
        .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (200, Some("cdr by guid"))
    );
    let (status, _) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{guid}/rotate-signing-secret"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "an action by GUID");
    // Another tenant's GUID names nothing here.
    let other = server.tenant("other").await;
    let (status, _) = other
        .get(&format!("/v1/tenants/other/integrations/{guid}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["cdr"]["ring"], 12, "durations are seconds");
    assert_eq!(
        (
            body["cdr"]["ans"].as_i64(),
            body["cdr"]["dir"].as_i64(),
            body["cdr"]["type"].as_i64()
        ),
        (Some(0), Some(2), Some(2))
    );
    assert_eq!(body["customData"], json!({"hook": "post-call"}));

    let st = states.next(10).await.json();
    assert_eq!(
        (
            st["seq_num"].as_u64(),
            st["state"].as_str(),
            st["direction"].as_str(),
            st["device_type"].as_str()
        ),
        (Some(1), Some("EARLY"), Some("OUTGOING"), Some("MOBILE"))
    );

    let h = history.next(10).await.json();
    assert_eq!(h["call"]["details"][0]["call_type"], "INCOMING_CALL");
    assert_eq!(h["params_key"], "k", "custom data merged at the top level");

    let f = form.next(10).await;
    assert_eq!(
        f.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let text = String::from_utf8_lossy(&f.body).to_string();
    assert!(text.contains("cdr%5BcliNum%5D=%2B441610000001"), "{text}");
    let secret = form_i["signing_secret"].as_str().unwrap_or_default();
    let ts = f.header("webhook-timestamp").parse().unwrap_or(0);
    assert!(verify(
        secret,
        &f.header("webhook-id"),
        ts,
        &f.body,
        &f.header("webhook-signature")
    ));
    // A form body verifies with the official library over the bytes received, as JSON does.
    let wh = standardwebhooks::Webhook::new(secret).expect("secret");
    assert!(wh.verify(&f.body, &f.headers).is_ok());

    let g = get.next(10).await;
    assert!(g.body.is_empty());
    let query = g.query.clone();
    assert!(query.starts_with("token=abc&triggerId="), "{query}");
    let secret = get_i["signing_secret"].as_str().unwrap_or_default();
    let ts = g.header("webhook-timestamp").parse().unwrap_or(0);
    assert!(
        verify(
            secret,
            &g.header("webhook-id"),
            ts,
            query.as_bytes(),
            &g.header("webhook-signature")
        ),
        "GET is signed over the query string as sent"
    );
    let wh = standardwebhooks::Webhook::new(secret).expect("secret");
    assert!(
        wh.verify(query.as_bytes(), &g.headers).is_ok(),
        "the official library, given the query string as the payload"
    );

    // The IVR's call state was never sent: the next state arrives first.
    server
        .ingest(event(
            "st-2",
            "acme",
            "call.state",
            "call-2",
            json!({"seq": 2, "state": "confirmed", "local": {"user_id": "u1"}}),
        ))
        .await;
    assert_eq!(states.next(10).await.json()["seq_num"], 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_that_cannot_render_an_event_type_is_refused_at_save() {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    for (profile, types) in [
        ("call-state", json!(["call.completed"])),
        ("recording.v2", json!(["call.state"])),
        ("call-history", json!(["call.completed"])),
        ("cdr", json!(["ivr.input"])),
    ] {
        let (st, v) = api
            .post(
                "/v1/tenants/acme/integrations",
                json!({"name": "n", "url": "http://127.0.0.1:9/x",
            "profile": profile, "event_types": types}),
            )
            .await;
        assert_eq!(st, 422, "{profile}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("cannot render"),
            "{v}"
        );
    }
    let (st, v) = api.post("/v1/tenants/acme/integrations", json!({"name": "n", "url": "http://127.0.0.1:9/x",
        "event_types": ["call.state"], "privacy": {"local_email": {"action": "mask", "digits": 3}}})).await;
    assert_eq!(st, 422, "only numbers can be masked: {v}");
    server.stop().await;
}

fn wav(samples: usize) -> Vec<u8> {
    let data_len = (samples * 2) as u32;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes()); // PCM
    v.extend_from_slice(&1u16.to_le_bytes()); // mono
    v.extend_from_slice(&8000u32.to_le_bytes());
    v.extend_from_slice(&16000u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let s = ((i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_links_download_the_exact_bytes_and_retries_carry_fresh_links() {
    let server = TestServer::start_with(|c| {
        c.seal_key = Some(seal_key_b64());
        c.max_recording_bytes = 64 * 1024;
    })
    .await;
    let api = server.tenant("acme").await;
    let (_, tok) = server
        .admin()
        .post(
            "/v1/tokens",
            json!({"role": "ingest", "tenant_id": "acme", "name": "pbx"}),
        )
        .await;
    let ingest = tok["token"].as_str().unwrap_or_default().to_string();
    let http = reqwest::Client::new();
    let audio = wav(8000);
    let resp = http
        .put(format!("{}/v1/recordings/rec-file-1", server.base))
        .bearer_auth(&ingest)
        .header("content-type", "audio/wav")
        .body(audio.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 201);
    let meta: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(
        (meta["bytes"].as_u64(), meta["content_type"].as_str()),
        (Some(audio.len() as u64), Some("audio/wav"))
    );

    // Too large: refused, and nothing is left behind.
    let resp = http
        .put(format!("{}/v1/recordings/too-big", server.base))
        .bearer_auth(&ingest)
        .body(vec![0u8; 100 * 1024])
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 413);
    let rec_dir = server.data_dir().join("recordings");
    assert!(!rec_dir.join("acme/too-big").exists());
    assert_eq!(
        std::fs::read_dir(rec_dir.join(".partial"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "no partial file left"
    );

    let rx = server.receiver().await;
    rx.script(vec![Reply::Status(500)], Reply::Status(200));
    api.integration("acme", json!({"name": "rec", "url": rx.url, "profile": "recording.v2", "event_types": ["recording.completed"],
        "delivery": {"retry": {"policy": "linear", "retries": 1}}})).await;
    let ev = event(
        "r-1",
        "acme",
        "recording.completed",
        "call-9",
        json!({"recording_id": "rec-1",
        "files": [{"file_id": "rec-file-1", "content_type": "audio/wav", "bytes": audio.len()}],
        "owner": {"kind": "user", "user_id": "u1"}, "recorder_id": "+441610000001",
        "call": {"started_at": "2026-11-22T10:00:00Z", "ended_at": "2026-11-22T10:01:00Z", "direction": "outbound"}}),
    );
    let (st, _) = api
        .http
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&ingest)
        .json(&ev)
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .expect("ingest");
    assert_eq!(st, 202);
    // The retry comes 2 s later on the server's clock, moved forward rather than waited for.
    let got = rx
        .take_advancing(
            &server.clock,
            2,
            Duration::from_millis(50),
            Duration::from_secs(10),
        )
        .await;
    let (first, second) = (got[0].json(), got[1].json());
    let (u1, u2) = (
        first["fileUrls"][0].as_str().unwrap_or_default(),
        second["fileUrls"][0].as_str().unwrap_or_default(),
    );
    assert!(
        u1.starts_with(&format!(
            "{}/v1/recordings/rec-file-1/content?tenant_id=acme&expires=",
            server.base
        )),
        "{u1}"
    );
    assert_ne!(u1, u2, "the retry carries a freshly signed link");
    assert_eq!(second["userId"], "u1");

    let got = http.get(u2).send().await.expect("download");
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("audio/wav")
    );
    assert_eq!(
        got.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
        audio,
        "the exact uploaded bytes"
    );
    let part = http
        .get(u2)
        .header("range", "bytes=44-99")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
        audio[44..100].to_vec()
    );

    let tampered = u2.replace("rec-file-1", "rec-file-2");
    assert_eq!(
        http.get(&tampered)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        403
    );
    let flipped = if u2.ends_with('0') { '1' } else { '0' };
    let bad_sig = format!("{}{flipped}", &u2[..u2.len() - 1]);
    assert_eq!(
        http.get(&bad_sig)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        403
    );
    // A correctly signed link whose time is up: made with the server's own link key.
    let links = Links::new(
        &server.base,
        Sealer::from_key(SEAL_KEY).derive_key("recording-urls"),
    );
    let expired = links.url(
        "acme",
        "rec-file-1",
        callhook::time::now_ms() - 31 * 60 * 1000,
    );
    assert_eq!(
        http.get(&expired)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        410
    );
    let fresh = links.url("acme", "rec-file-1", callhook::time::now_ms());
    assert_eq!(
        http.get(&fresh)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        200
    );
    // The link the server sent expires 30 minutes after the attempt, on the server's clock.
    server.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(
        http.get(u2)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        410
    );
    server.stop().await;
}
