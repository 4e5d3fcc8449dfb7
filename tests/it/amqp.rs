//! AMQP destinations against a real RabbitMQ (Debian's `rabbitmq-server`, started here on
//! 127.0.0.1 with its own node name, ports and store): the message and its properties, a
//! message no queue takes, the check at save, TLS, and at-least-once and per-call order across a
//! broker restart.

use callhook::render::sign::verify;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::ExchangeKind;
use serde_json::{json, Value};

use crate::brokers::{assert_each_state_once_in_order, first_failed_attempt};
use crate::rabbit::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amqp_destination_gets_the_signed_payload_confirmed_and_routed_to_a_queue() {
    let rabbit = Rabbit::start(None).await;
    let ch = rabbit.exchange_and_queue("crm", "acme.#").await;
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let integ = api
        .integration("acme", amqp_spec(&rabbit.url(), json!({})))
        .await;
    assert_eq!(integ["destination"]["type"], "amqp");
    assert!(
        integ.get("secret").is_none(),
        "the password is write-only: {integ}"
    );
    let signing = integ["signing_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let data = json!({"answered": true, "direction": "inbound",
                      "caller": {"number": "+441610000002"}});
    let e = event("e-1", "acme", "call.completed", "c-1", data);
    assert_eq!(server.ingest(e).await.0, 202);
    let got = take(&ch, "crm", &server.clock, 1).await;
    let m = &got[0];
    assert_eq!(m.delivery.routing_key.as_str(), "acme.cdr");
    assert_eq!(m.delivery.exchange.as_str(), "calls");
    let body: Value = serde_json::from_slice(&m.delivery.data).unwrap_or(Value::Null);
    assert_eq!(body["id"], "e-1");
    let props = &m.delivery.properties;
    let id = header(m, "webhook-id");
    assert_eq!(body["delivery_id"], json!(id));
    assert_eq!(
        props.message_id().as_ref().map(|s| s.to_string()),
        Some(id.clone())
    );
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        props.content_type().as_ref().map(|s| s.to_string()),
        Some("application/json; charset=utf-8".to_string())
    );
    assert_eq!(header(m, "callhook-event-type"), "call.completed");
    let ts: i64 = header(m, "webhook-timestamp").parse().unwrap_or_default();
    assert!(verify(
        &signing,
        &id,
        ts,
        &m.delivery.data,
        &header(m, "webhook-signature")
    ));
    assert_eq!(
        header(m, "authorization"),
        "",
        "the password is never a header"
    );
    let done = api.wait_for_deliveries("acme", &iid, "succeeded", 1).await;
    let (_, detail) = api
        .get(&format!(
            "/v1/tenants/acme/integrations/{iid}/deliveries/{}",
            done[0]["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(
        detail["attempts_log"][0]["response_excerpt"],
        "exchange calls routing key acme.cdr confirmed",
        "{detail}"
    );
    let mut b = crate::console::Browser::new(&server);
    b.sign_in(&api.token).await;
    let page = b.get(&format!("/console/t/acme/integrations/{iid}")).await;
    assert!(
        page.html
            .contains("exchange <code>calls</code>, routing key <code>acme.cdr</code>"),
        "{}",
        page.html
    );
    server.stop().await;
}

/// A confirm alone means the broker took the message, not that a queue did: a message no
/// binding matches comes back, the attempt fails (class `broker`) and is retried until a queue
/// is bound for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_no_queue_takes_is_a_failed_attempt_retried_until_one_is_bound() {
    let rabbit = Rabbit::start(None).await;
    let ch = rabbit.exchange_and_queue("other", "globex.#").await;
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let integ = api
        .integration(
            "acme",
            amqp_spec(
                &rabbit.url(),
                json!({"delivery": {"retry": {"policy": "linear", "retries": 10}}}),
            ),
        )
        .await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let e = event(
        "e-1",
        "acme",
        "call.completed",
        "c-1",
        json!({"answered": true}),
    );
    assert_eq!(server.ingest(e).await.0, 202);
    let failed = first_failed_attempt(&api, &iid).await;
    let (_, detail) = api
        .get(&format!(
            "/v1/tenants/acme/integrations/{iid}/deliveries/{}",
            failed["id"].as_str().unwrap_or_default()
        ))
        .await;
    let attempt = &detail["attempts_log"][0];
    assert_eq!(attempt["error_class"], "broker", "{detail}");
    assert!(
        attempt["error"]
            .as_str()
            .is_some_and(|m| m.contains("no queue takes routing key `acme.cdr`")),
        "{detail}"
    );
    // A queue bound for it: the retry is delivered, once.
    rabbit.queue(&ch, "crm", "acme.*").await;
    let got = take(&ch, "crm", &server.clock, 1).await;
    let body: Value = serde_json::from_slice(&got[0].delivery.data).unwrap_or(Value::Null);
    assert_eq!(body["id"], "e-1");
    api.wait_for_deliveries("acme", &iid, "succeeded", 1).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_settings_are_checked_when_saved_and_nothing_is_saved_when_they_are_wrong() {
    let rabbit = Rabbit::start(None).await;
    let ch = rabbit.exchange_and_queue("crm", "acme.#").await;
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let url = rabbit.url();
    let dest = |exchange: &str, key: &str| json!({"destination": {"type": "amqp", "exchange": exchange, "routing_key": key, "user": USER}});
    let cases = [
        (dest("calls!", "acme.cdr"), "destination.exchange"),
        (dest("", ""), "destination.routing_key"),
        (dest("calls", "a\u{7}b"), "destination.routing_key"),
        (
            json!({"destination": {"type": "amqp", "exchange": "calls", "routing_key": "k"}}),
            "user",
        ),
        (json!({"headers": {"CC": "globex.cdr"}}), "`CC`"),
        (json!({"headers": {"x-delay": "5"}}), "`x-delay`"),
        (json!({"url": "https://example.com/"}), "amqps://"),
        (json!({"url": "amqp://10.9.8.7"}), "CALLHOOK_AMQP_SERVERS"),
        // What the client cannot carry (a panic, were it sent) or would quietly drop.
        (json!({"headers": {"h".repeat(300): "v"}}), "255 bytes"),
        (
            json!({"url": format!("{url}/{}", "v".repeat(300))}),
            "255 bytes",
        ),
        (json!({"url": format!("{url}/a/b")}), "one virtual host"),
        (json!({"url": format!("{url}/acme?heartbeat=0")}), "query"),
        (json!({"method": "PUT"}), "`method`"),
        (json!({"secret_use": "webex-signature"}), "`secret_use`"),
        // The check at save: the exchange (or, with the default one, the queue) must exist,
        // and the credentials must be right.
        (dest("nope", "acme.cdr"), "exchange `nope`"),
        (dest("", "no-such-queue"), "queue `no-such-queue`"),
        (
            json!({"secret": "wrong-password"}),
            "connecting to the AMQP broker",
        ),
        (
            json!({"url": "amqp://127.0.0.1:1"}),
            "connecting to the AMQP broker",
        ),
    ];
    for (extra, says) in cases {
        let (st, v) = api
            .post(
                "/v1/tenants/acme/integrations",
                amqp_spec(&url, extra.clone()),
            )
            .await;
        assert!(st == 422 || st == 400, "{extra}: {st} {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{extra}: {says}: {message}");
    }
    let (_, list) = api.get("/v1/tenants/acme/integrations").await;
    assert_eq!(list["items"], json!([]));
    // The default exchange with a queue's name is fine, and delivered straight to the queue.
    let integ = api
        .integration("acme", amqp_spec(&url, dest("", "crm")))
        .await;
    // A change of destination by PATCH is checked as a new one is.
    let path = format!(
        "/v1/tenants/acme/integrations/{}",
        integ["id"].as_str().unwrap_or_default()
    );
    let (st, v) = api.patch(&path, dest("nope", "acme.cdr")).await;
    assert_eq!(st, 422, "{v}");
    let e = event(
        "e-1",
        "acme",
        "call.completed",
        "c-1",
        json!({"answered": true}),
    );
    assert_eq!(server.ingest(e).await.0, 202);
    let got = take(&ch, "crm", &server.clock, 1).await;
    assert_eq!(got[0].delivery.routing_key.as_str(), "crm");
    server.stop().await;
}

/// Production is TLS to a broker callhook does not control: `amqps://` is checked against the
/// node's roots (a private CA in `CALLHOOK_CA_FILE`), and plain `amqp://` is refused where plain
/// http is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amqp_broker_behind_a_private_ca_is_reached_over_tls_and_an_untrusted_one_is_not() {
    let ca = crate::tls::TestCa::new();
    let rabbit = Rabbit::start(Some(&ca)).await;
    let ch = rabbit.exchange_and_queue("crm", "acme.#").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("amqps://127.0.0.1:{}", rabbit.tls_port.unwrap_or_default());
    let server = crate::tls::https_only(None).await;
    let api = server.tenant("acme").await;
    let (st, v) = api
        .post("/v1/tenants/acme/integrations", amqp_spec(&url, json!({})))
        .await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["error"]["code"], "destination_unreachable", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.to_ascii_lowercase().contains("certificate")),
        "{v}"
    );
    let (st, v) = api
        .post(
            "/v1/tenants/acme/integrations",
            amqp_spec(&rabbit.url(), json!({})),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("must use amqps://")),
        "{v}"
    );
    server.stop().await;
    let server = crate::tls::https_only(Some(ca.file(dir.path()))).await;
    let api = server.tenant("acme").await;
    api.integration("acme", amqp_spec(&url, json!({}))).await;
    let e = event(
        "e-tls",
        "acme",
        "call.completed",
        "c-tls",
        json!({"answered": true}),
    );
    assert_eq!(server.ingest(e).await.0, 202);
    let got = take(&ch, "crm", &server.clock, 1).await;
    let body: Value = serde_json::from_slice(&got[0].delivery.data).unwrap_or(Value::Null);
    assert_eq!(body["id"], "e-tls");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_deliveries_survive_a_broker_restart_at_least_once_and_in_order_per_call() {
    let mut rabbit = Rabbit::start(None).await;
    rabbit.exchange_and_queue("crm", "acme.#").await;
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let integ = api
        .integration(
            "acme",
            amqp_spec(
                &rabbit.url(),
                json!({"event_types": ["call.state"],
                       "delivery": {"timeout_ms": 5000, "retry": {"policy": "linear", "retries": 10}}}),
            ),
        )
        .await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let state = |id: &str, call: &str, seq: usize, s: &str| {
        event(
            id,
            "acme",
            "call.state",
            call,
            json!({"seq": seq, "state": s, "direction": "inbound", "local": {"user_id": "u1"}}),
        )
    };
    // One delivery first, so the node holds a connection when the broker goes away.
    assert_eq!(
        server
            .ingest(state("warm-1", "c-warm", 1, "trying"))
            .await
            .0,
        202
    );
    api.wait_for_deliveries("acme", &iid, "succeeded", 1).await;
    rabbit.stop().await;
    const STATES: [&str; 4] = ["trying", "proceeding", "early", "confirmed"];
    let mut events = Vec::new();
    for seq in 1..=4 {
        for call in ["c-a", "c-b"] {
            events.push(state(&format!("{call}-{seq}"), call, seq, STATES[seq - 1]));
        }
    }
    assert_eq!(server.ingest(json!({"events": events})).await.0, 202);
    first_failed_attempt(&api, &iid).await;
    // The same node and store again: the durable queue still holds the first message.
    rabbit.run().await;
    let ch = rabbit.admin().await;
    let got = take(&ch, "crm", &server.clock, 9).await;
    let mut bodies: Vec<Value> = got
        .iter()
        .map(|m| serde_json::from_slice(&m.delivery.data).unwrap_or(Value::Null))
        .collect();
    api.wait_for_deliveries("acme", &iid, "succeeded", 9).await;
    // At least once: a publish whose confirmation was lost is sent again, right behind itself
    // (the call's next state waits for it). Such a copy may still be in the queue.
    let more = take_waiting(&ch, "crm").await;
    bodies.extend(
        more.iter()
            .map(|m| serde_json::from_slice(&m.delivery.data).unwrap_or(Value::Null)),
    );
    // A copy follows its original within its call; collapse those, and nothing else.
    let mut last: std::collections::HashMap<String, Value> = Default::default();
    bodies.retain(|b| {
        let call = b["call_id"].as_str().unwrap_or_default().to_string();
        last.insert(call, b["id"].clone()).as_ref() != Some(&b["id"])
    });
    assert_each_state_once_in_order(&bodies);
    server.stop().await;
}

/// The client cannot tell which of several waiting publishes a returned message belongs to, so
/// a channel has one publish in flight at a time: with routable and unroutable messages
/// published side by side, every routed one is delivered and no returned one is counted as
/// delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_message_is_never_counted_as_delivered_when_publishes_overlap() {
    let rabbit = Rabbit::start(None).await;
    let ch = rabbit.admin().await;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        "by-type".into(),
        ExchangeKind::Headers,
        durable,
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    let queue = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("completed".into(), queue, FieldTable::default())
        .await
        .expect("queue");
    // Only call.completed is routed; call.state messages come back.
    let mut args = FieldTable::default();
    args.insert("x-match".into(), AMQPValue::LongString("all".into()));
    args.insert(
        "callhook-event-type".into(),
        AMQPValue::LongString("call.completed".into()),
    );
    ch.queue_bind(
        "completed".into(),
        "by-type".into(),
        "".into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .expect("bind");
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    let integ = api
        .integration(
            "acme",
            amqp_spec(
                &rabbit.url(),
                json!({"event_types": ["call.state", "call.completed"],
                       "destination": {"type": "amqp", "exchange": "by-type", "routing_key": "", "user": USER},
                       "delivery": {"max_in_flight": 32, "retry": {"policy": "linear", "retries": 0}}}),
            ),
        )
        .await;
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let mut events = Vec::new();
    for n in 0..40 {
        let call = format!("c-{n}");
        events.push(event(
            &format!("s-{n}"),
            "acme",
            "call.state",
            &call,
            json!({"seq": 1, "state": "trying", "direction": "inbound", "local": {"user_id": "u1"}}),
        ));
        events.push(event(
            &format!("e-{n}"),
            "acme",
            "call.completed",
            &call,
            json!({"answered": true}),
        ));
    }
    assert_eq!(server.ingest(json!({"events": events})).await.0, 202);
    let done = api.wait_for_deliveries("acme", &iid, "succeeded", 40).await;
    let failed = api.wait_for_deliveries("acme", &iid, "failed", 40).await;
    assert!(
        done.iter().all(|d| d["event_type"] == "call.completed"),
        "a returned call.state counted as delivered: {done:?}"
    );
    assert!(
        failed.iter().all(|d| d["event_type"] == "call.state"),
        "a routed call.completed counted as failed: {failed:?}"
    );
    let got = take(&ch, "completed", &server.clock, 40).await;
    assert!(take_waiting(&ch, "completed").await.is_empty());
    assert_eq!(got.len(), 40);
    server.stop().await;
}
