//! Real SIP calls: sipp user agents call each other through Kamailio (contrib/kamailio), which
//! reports each call's states to callhook; receivers check the webhooks that come out.
//!
//! Needs Debian's `kamailio`, `kamailio-utils-modules`, `kamailio-extra-modules` and
//! `sip-tester` (sipp); `scripts/install-test-deps` installs them. Everything listens on
//! 127.0.0.1 on free ports.

#[allow(dead_code)]
#[path = "it/support.rs"]
mod support;

#[path = "common/process_group.rs"]
mod process_group;

#[allow(dead_code)]
#[path = "common/browser.rs"]
mod chromium;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use process_group::ProcessGroup;
use support::{Api, Receiver, TestServer};

fn contrib() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/kamailio")
}

fn binary(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_string());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: run scripts/install-test-deps (Debian's kamailio and sip-tester) or set {var}"
    );
    path
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Stack {
    server: TestServer,
    _kamailio: ProcessGroup,
    _run_dir: tempfile::TempDir,
    proxy_port: u16,
    /// call-state profile: what a seed-004 receiver sees.
    states: Receiver,
    /// canonical: the states with every field the proxy sent.
    raw: Receiver,
    /// cdr profile, `call.completed`: the records built from the states.
    records: Receiver,
    /// call-history profile, `call.unanswered`.
    missed: Receiver,
}

async fn integration(tenant: &Api, r: &Receiver, profile: &str, types: Value) {
    tenant
        .integration(
            "acme",
            json!({"name": profile, "url": r.url, "profile": profile, "event_types": types}),
        )
        .await;
}

async fn start_stack() -> Stack {
    start_stack_with(&[]).await
}

/// The stack, with extra `-A` defines for the Kamailio config.
async fn start_stack_with(defines: &[&str]) -> Stack {
    let server = TestServer::start_with(|c| c.derived_cdr_grace_ms = 100).await;
    let tenant = server.tenant("acme").await;
    let (states, raw, records, missed) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    integration(&tenant, &states, "call-state", json!(["call.state"])).await;
    integration(&tenant, &raw, "canonical", json!(["call.state"])).await;
    integration(&tenant, &records, "cdr", json!(["call.completed"])).await;
    integration(&tenant, &missed, "call-history", json!(["call.unanswered"])).await;
    let (_, token) = server
        .admin()
        .post(
            "/v1/tokens",
            json!({"role": "ingest", "tenant_id": "acme", "name": "kamailio"}),
        )
        .await;
    let token = token["token"].as_str().unwrap_or_default().to_string();

    let proxy_port = free_udp_port();
    let run_dir = tempfile::tempdir().expect("run dir");
    let kamailio = ProcessGroup::spawn(
        Command::new(binary("CALLHOOK_KAMAILIO", "/usr/sbin/kamailio"))
            .arg("-f")
            .arg(contrib().join("callhook.cfg"))
            .args(["-DD", "-E", "-Y"])
            .arg(run_dir.path())
            .args(["-l", &format!("udp:127.0.0.1:{proxy_port}")])
            .args(["-A", &format!("CALLHOOK_URL=\"{}/v1/events\"", server.base)])
            .args(["-A", &format!("CALLHOOK_TOKEN=\"{token}\"")])
            .args(["-A", "TENANT_ID=\"acme\""])
            .args(["-A", "NO_ANSWER_MS=1500"])
            .args([
                "-A",
                &format!("NEXT_HOP=\"sip:127.0.0.1:{}\"", proxy_port + 1),
            ])
            .args(defines.iter().flat_map(|d| ["-A", d]))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("kamailio starts");
    wait_for_proxy(proxy_port);
    Stack {
        server,
        _kamailio: kamailio,
        _run_dir: run_dir,
        proxy_port,
        states,
        raw,
        records,
        missed,
    }
}

/// Ready when the proxy answers a SIP request (any answer).
fn wait_for_proxy(port: u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let local = sock.local_addr().expect("addr").port();
    let options = format!(
        "OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKping\r\n\
         From: <sip:ping@127.0.0.1>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: ping-{local}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let mut buf = [0u8; 2048];
    for _ in 0..100 {
        let _ = sock.send_to(options.as_bytes(), ("127.0.0.1", port));
        if sock.recv(&mut buf).is_ok() {
            return;
        }
    }
    panic!("kamailio did not answer on 127.0.0.1:{port}");
}

fn sipp(scenario: &str, args: &[String]) -> Command {
    let mut cmd = Command::new(binary("CALLHOOK_SIPP", "/usr/bin/sipp"));
    cmd.arg("-sf")
        .arg(contrib().join("sipp").join(format!("{scenario}.xml")))
        .args(["-i", "127.0.0.1", "-nostdin", "-timeout", "60s"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Runs `calls` calls of the `uac`/`uas` scenario pair through the proxy, `rate` per second.
fn place_calls(stack: &Stack, uas: &str, uac: &str, calls: u32, rate: u32) {
    let uas_port = (stack.proxy_port + 1).to_string();
    let mut callee = ProcessGroup::spawn(&mut sipp(
        uas,
        &["-p".into(), uas_port, "-m".into(), calls.to_string()],
    ))
    .expect("sipp uas");
    let status = sipp(
        uac,
        &[
            format!("127.0.0.1:{}", stack.proxy_port),
            "-p".into(),
            free_udp_port().to_string(),
            "-s".into(),
            "1001".into(),
            "-m".into(),
            calls.to_string(),
            "-r".into(),
            rate.to_string(),
        ],
    )
    .status()
    .expect("sipp uac");
    assert!(
        status.success(),
        "{uac} against {uas}: sipp failed ({status})"
    );
    match callee.wait_for_exit(Duration::from_secs(30)) {
        Some(st) => assert!(st.success(), "{uas}: sipp failed ({st})"),
        None => panic!("{uas} did not finish"),
    }
}

/// The call-state webhooks of the next call: (state, termination-reason).
async fn next_states(stack: &Stack, n: usize) -> Vec<(String, String)> {
    let got = stack.states.take(n, 20).await;
    let call = got[0].json()["call_id"].clone();
    got.iter()
        .map(|d| {
            let v = d.json();
            assert_eq!(v["call_id"], call, "one call's states arrive together: {v}");
            (
                v["state"].as_str().unwrap_or_default().to_string(),
                v["termination-reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// The full data of the next call's terminated state.
async fn terminated_data(stack: &Stack, n: usize) -> Value {
    let got = stack.raw.take(n, 20).await;
    got.last()
        .map(|d| d.json()["data"].clone())
        .unwrap_or(Value::Null)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_calls_through_kamailio_become_webhooks() {
    let stack = start_stack().await;

    // Answered, then the caller hangs up.
    place_calls(&stack, "uas_answer", "uac_caller_hangs_up", 1, 1);
    assert_eq!(
        next_states(&stack, 3).await,
        pairs(&[("EARLY", ""), ("CONFIRMED", ""), ("TERMINATED", "HANGUP")])
    );
    assert_eq!(terminated_data(&stack, 3).await["ended_by"], "caller");
    let record = stack.records.next(10).await.json();
    assert_eq!(record["cdr"]["ans"], json!(1), "{record}");

    // Answered, then the callee hangs up.
    place_calls(&stack, "uas_answer_then_bye", "uac_callee_hangs_up", 1, 1);
    assert_eq!(
        next_states(&stack, 3).await,
        pairs(&[("EARLY", ""), ("CONFIRMED", ""), ("TERMINATED", "HANGUP")])
    );
    assert_eq!(terminated_data(&stack, 3).await["ended_by"], "callee");
    stack.records.next(10).await;

    // Busy: rejected with 486, never rang.
    place_calls(&stack, "uas_busy", "uac_rejected", 1, 1);
    assert_eq!(
        next_states(&stack, 1).await,
        pairs(&[("TERMINATED", "REJECTED")])
    );
    assert_eq!(terminated_data(&stack, 1).await["sip_code"], json!(486));
    stack.records.next(10).await;
    let missed = stack.missed.next(10).await.json();
    assert!(!missed.is_null());

    // Rang, the caller gave up.
    place_calls(&stack, "uas_ring", "uac_cancel", 1, 1);
    assert_eq!(
        next_states(&stack, 2).await,
        pairs(&[("EARLY", ""), ("TERMINATED", "CANCELLED")])
    );
    assert_eq!(terminated_data(&stack, 2).await["sip_code"], json!(487));
    stack.records.next(10).await;
    stack.missed.next(10).await;

    // Rang until the proxy gave up: no answer.
    place_calls(&stack, "uas_ring", "uac_no_answer", 1, 1);
    assert_eq!(
        next_states(&stack, 2).await,
        pairs(&[("EARLY", ""), ("TERMINATED", "REJECTED")])
    );
    assert_eq!(terminated_data(&stack, 2).await["sip_code"], json!(408));
    let record = stack.records.next(10).await.json();
    assert_eq!(record["cdr"]["ans"], json!(0), "{record}");
    stack.missed.next(10).await;

    stack.server.stop().await;
}

/// Answered, and then nobody hangs up: the proxy's dialog times out and the call is reported
/// terminated all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialog_that_times_out_is_reported_terminated() {
    let stack = start_stack_with(&["DIALOG_TIMEOUT_S=1"]).await;
    place_calls(&stack, "uas_answer_hold", "uac_never_hangs_up", 1, 1);
    assert_eq!(
        next_states(&stack, 3).await,
        pairs(&[("EARLY", ""), ("CONFIRMED", ""), ("TERMINATED", "HANGUP")])
    );
    assert_eq!(terminated_data(&stack, 3).await["ended_by"], "timeout");
    stack.server.stop().await;
}

/// 1 000 answered calls at 100 calls/s: every state arrives, and the time from the state's
/// `occurred_at` (stamped by Kamailio) to its webhook is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_calls_lose_no_event() {
    const CALLS: u32 = 1000;
    let stack = start_stack().await;
    let wall = SystemTime::now();
    let mono = Instant::now();
    let started = Instant::now();
    place_calls(&stack, "uas_answer", "uac_caller_hangs_up", CALLS, 100);
    let got = stack.states.take(3 * CALLS as usize, 60).await;
    let elapsed = started.elapsed();
    let mut latencies: Vec<i64> = got
        .iter()
        .map(|d| {
            let arrived = wall + (d.at - mono);
            let arrived_ms = arrived
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default();
            let stamped = d.json()["timestamp"]
                .as_str()
                .and_then(callhook::time::parse_rfc3339_ms)
                .unwrap_or_default();
            arrived_ms - stamped
        })
        .collect();
    let mut per_call = std::collections::HashMap::<String, usize>::new();
    for d in &got {
        *per_call
            .entry(d.json()["call_id"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_call.len(), CALLS as usize, "every call reported");
    assert!(per_call.values().all(|n| *n == 3), "three states per call");
    latencies.sort_unstable();
    let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    eprintln!(
        "sip load: {CALLS} calls at 100/s, {} call-state webhooks in {:.1} s; event-to-webhook latency ms p50 {} p99 {} max {}",
        got.len(),
        elapsed.as_secs_f64(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    stack.server.stop().await;
}

/// The console's live calls page, fed by a stream integration, while real calls go through
/// Kamailio: each call appears with the states the webhooks got, in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_calls_show_in_the_console_as_sip_calls_happen_in_headless_chromium() {
    use chromium::*;
    use fantoccini::Locator;
    let stack = start_stack().await;
    let admin = stack.server.admin();
    let (_, token) = admin
        .post(
            "/v1/tokens",
            json!({"role": "tenant_viewer", "tenant_id": "acme", "name": "desk"}),
        )
        .await;
    let token = token["token"].as_str().unwrap_or_default().to_string();
    let (st, integ) = stack
        .server
        .admin()
        .post(
            "/v1/tenants/acme/integrations",
            json!({"name": "desks", "destination": {"type": "stream"},
                   "event_types": ["call.state"], "profile": "call-state"}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let iid = integ["id"].as_str().unwrap_or_default().to_string();
    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.goto(&format!("{}/console/login", stack.server.base))
        .await
        .expect("goto");
    fill(&c, "token", &token).await;
    click(&c, "sign-in").await;
    c.goto(&format!(
        "{}/console/t/acme/integrations/{iid}",
        stack.server.base
    ))
    .await
    .expect("goto");
    click(&c, "live-link").await;
    assert_eq!(
        text_of(&c, "h1").await,
        "Live calls",
        "{}",
        c.source().await.unwrap_or_default()
    );
    wait_for_text(&c, "#live-status", "live").await;
    // Two calls: answered then hung up by the caller; busy.
    place_calls(&stack, "uas_answer", "uac_caller_hangs_up", 1, 1);
    let answered = next_states(&stack, 3).await;
    place_calls(&stack, "uas_busy", "uac_rejected", 1, 1);
    let busy = next_states(&stack, 1).await;
    let rows = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#live-calls tbody tr:nth-child(2).ended"))
        .await;
    assert!(rows.is_ok(), "two ended calls in the table");
    shot(&c, "30-live-calls").await;
    let states = |row: usize| {
        let c = c.clone();
        async move {
            c.find(Locator::Css(&format!(
                "#live-calls tbody tr:nth-child({row})"
            )))
            .await
            .expect("row")
            .attr("data-states")
            .await
            .expect("attr")
            .unwrap_or_default()
        }
    };
    let lower = |v: &[(String, String)]| {
        v.iter()
            .map(|(s, _)| s.to_lowercase())
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Newest first: the busy call on top.
    assert_eq!(states(1).await, lower(&busy));
    assert_eq!(states(2).await, lower(&answered));
    let text = c
        .find(Locator::Css("#live-calls tbody tr:nth-child(2)"))
        .await
        .expect("row")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("incoming") || text.contains("outgoing"),
        "{text}"
    );
    stack.server.stop().await;
}
