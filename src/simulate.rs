//! `callhook simulate`: realistic call traffic against a running server — inbound and outbound,
//! answered and missed calls with their state changes, CDRs, IVR digits, recordings (small real
//! WAV files, uploaded first) and speech analysis with transcripts.

use std::time::Duration;

use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::time::format_ms;

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Base URL of the callhook server.
    #[arg(long, env = "CALLHOOK_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An ingest (or operator) token.
    #[arg(long, env = "CALLHOOK_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The tenant whose calls these are.
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    /// Calls per second.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// How many calls (0: until stopped).
    #[arg(long, default_value_t = 0)]
    pub calls: u64,
    /// Seed for reproducible traffic.
    #[arg(long)]
    pub seed: Option<u64>,
}

const USERS: [(&str, &str, &str); 4] = [
    ("u-101", "anna.berg@example.com", "+441610000101"),
    ("u-102", "ben.okafor@example.com", "+441610000102"),
    ("u-103", "chen.li@example.com", "+441610000103"),
    ("u-104", "dara.walsh@example.com", "+441610000104"),
];

/// A small real WAV file: `secs` seconds of a 440 Hz tone, 8 kHz mono 16-bit PCM.
pub fn wav(secs: f64) -> Vec<u8> {
    let samples = (8000.0 * secs) as usize;
    let data_len = (samples * 2) as u32;
    let mut v = Vec::with_capacity(44 + samples * 2);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&8000u32.to_le_bytes());
    v.extend_from_slice(&16000u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let s = ((i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 6000.0) as i16;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

/// One call's events, in the order a platform sends them, plus recording files to upload first.
pub struct SimulatedCall {
    pub call_id: String,
    pub summary: String,
    pub events: Vec<Value>,
    pub files: Vec<(String, Vec<u8>)>,
}

pub fn call(rng: &mut StdRng, tenant: &str, n: u64, now: i64) -> SimulatedCall {
    let call_id = format!("sim-{}-{n}", now / 1000);
    let (uid, email, number) = USERS[rng.gen_range(0..USERS.len())];
    let remote = format!("+4420{:08}", rng.gen_range(0..100_000_000u32));
    let inbound = rng.gen_bool(0.6);
    let answered = rng.gen_bool(0.7);
    let ivr = inbound && rng.gen_bool(0.3);
    let recorded = answered && rng.gen_bool(0.5);
    let ring_ms: i64 = rng.gen_range(2_000..20_000);
    let talk_ms: i64 = if answered {
        rng.gen_range(15_000..600_000)
    } else {
        0
    };
    let started = now - ring_ms - talk_ms;
    let answered_at = started + ring_ms;
    let ended = now;
    let direction = if inbound { "inbound" } else { "outbound" };
    let (caller, callee) = if inbound {
        (
            json!({"number": remote, "country": "GB"}),
            json!({"number": number, "user_id": uid, "email": email}),
        )
    } else {
        (
            json!({"number": number, "user_id": uid, "email": email}),
            json!({"number": remote, "country": "GB"}),
        )
    };
    let ev = |kind: &str, suffix: &str, at: i64, data: Value| {
        json!({"id": format!("{call_id}-{suffix}"), "type": kind, "tenant_id": tenant,
               "occurred_at": format_ms(at), "call_id": call_id, "data": data})
    };
    let party_local = json!({"user_id": uid, "email": email, "number": number, "device_type": if rng.gen_bool(0.5) { "soft" } else { "mobile" }});
    let party_remote = json!({"number": remote});
    let mut events = vec![ev(
        "call.state",
        "s1",
        started,
        json!({"seq": 1, "state": "early", "direction": direction,
        "local": party_local, "remote": party_remote}),
    )];
    if answered {
        events.push(ev(
            "call.state",
            "s2",
            answered_at,
            json!({"seq": 2, "state": "confirmed", "direction": direction,
            "local": party_local, "remote": party_remote}),
        ));
    }
    let reason = if answered {
        "hangup"
    } else if inbound {
        "cancelled"
    } else {
        "rejected"
    };
    events.push(ev(
        "call.state",
        "s3",
        ended,
        json!({"seq": 3, "state": "terminated", "termination_reason": reason,
        "direction": direction, "local": party_local, "remote": party_remote}),
    ));
    let recording_id = format!("{call_id}-rec");
    let mut cdr = json!({
        "answered": answered, "lost": !answered && inbound, "abandoned": false, "short": talk_ms < 5000,
        "direction": direction, "scope": "external", "trunk_to_trunk": false,
        "call_type": if inbound { "incoming" } else { "outgoing" },
        "started_at": format_ms(started), "ended_at": format_ms(ended), "timezone": "Europe/London",
        "ring_ms": ring_ms, "talk_ms": talk_ms, "hold_ms": 0, "park_ms": 0, "wait_ms": ring_ms,
        "caller": caller, "callee": callee, "did": {"number": "+441610000000", "name": "Main line"},
        "pbx": {"id": "pbx-1", "name": "Demo PBX"},
        "owner": {"kind": "user", "user_id": uid},
        "first_ringing": {"device": {"number": "1", "name": "Softphone"}, "user": {"id": uid, "number": &number[10..], "name": email}},
        "rating": {"rated": !inbound, "cost": if inbound { 0.0 } else { 0.012 }, "band": "national", "name": "UK"},
        "recording_ids": if recorded { json!([recording_id]) } else { json!([]) },
        "tags": {"source": "simulate"}, "license": {"partner_id": "demo-partner"}
    });
    if answered {
        cdr["answered_at"] = json!(format_ms(answered_at));
        cdr["answered_by"] = json!({"user": {"id": uid, "number": &number[10..], "name": email}});
    }
    if ivr {
        let digits = format!("{}", rng.gen_range(1..4));
        events.push(ev(
            "ivr.input",
            "ivr",
            started + 1000,
            json!({"dtmf": digits, "ivr_number": "+441610000000", "call": cdr}),
        ));
        cdr["dtmf"] = json!(digits);
    }
    events.push(ev("call.completed", "cdr", ended, cdr.clone()));
    let mut files = Vec::new();
    if recorded {
        let file_id = format!("{recording_id}-1");
        let audio = wav(1.0);
        events.push(ev("recording.completed", "rec", ended + 2000, json!({"recording_id": recording_id,
            "files": [{"file_id": file_id, "content_type": "audio/wav", "bytes": audio.len()}],
            "owner": {"kind": "user", "user_id": uid}, "recorder_id": email,
            "summary": "The customer asked about an invoice; the agent promised a call back.", "call": cdr})));
        files.push((file_id, audio));
        events.push(ev("analysis.completed", "analysis", ended + 5000, json!({
            "score": rng.gen_range(40.0..95.0), "talk_listen_ratio": rng.gen_range(0.3..0.7), "rally_count": rng.gen_range(2..20),
            "overlap_count": rng.gen_range(0..3), "silence_count": rng.gen_range(0..4),
            "silence_positions": [[3.2, 5.1]], "overlap_positions": [],
            "participants": [
                {"id": "p-agent", "role": if inbound { "to" } else { "from" }, "name": email, "company_name": null,
                 "voice": {"f0": 180.5, "speech_rate": 11.2, "variance": 15.1, "filler_count": 2, "positive_score": 0.6, "negative_score": 0.1}},
                {"id": "p-customer", "role": if inbound { "from" } else { "to" }, "name": null, "company_name": "Customer Ltd",
                 "voice": {"f0": 120.2, "speech_rate": 10.4, "variance": 12.9, "filler_count": 4, "positive_score": 0.4, "negative_score": 0.2}}],
            "keywords": [{"starts_at": 4, "participant_id": "p-customer", "value": "invoice"}],
            "phrases": [{"participant_id": "p-customer", "raw": [{"order": 0, "text": "Hi, I have a question about my invoice.",
                "text_nofiller": "Hi, I have a question about my invoice.", "start_at": 1.2, "end_at": 4.0, "filler_count": 0}], "summary": []}],
            "transcript": {"raw": "0:01 (Customer) Hi, I have a question about my invoice.", "summary": "Invoice question."},
            "summary": "Invoice question.", "call": cdr})));
    }
    let summary = format!(
        "{call_id}: {direction} {} {}s{}{}",
        if answered { "answered" } else { "missed" },
        talk_ms / 1000,
        if ivr { ", IVR" } else { "" },
        if recorded { ", recorded" } else { "" }
    );
    SimulatedCall {
        call_id,
        summary,
        events,
        files,
    }
}

/// Sends simulated calls until `args.calls` are done (or forever).
pub async fn run(args: SimulateArgs, quiet: bool) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut rng = match args.seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_entropy(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate.max(0.001)));
    let base = args.url.trim_end_matches('/').to_string();
    let mut n = 0u64;
    while args.calls == 0 || n < args.calls {
        tick.tick().await;
        n += 1;
        let c = call(&mut rng, &args.tenant, n, crate::time::now_ms());
        for (file_id, bytes) in &c.files {
            let r = http
                .put(format!(
                    "{base}/v1/recordings/{file_id}?tenant_id={}",
                    args.tenant
                ))
                .bearer_auth(&args.token)
                .header("content-type", "audio/wav")
                .body(bytes.clone())
                .send()
                .await?;
            anyhow::ensure!(
                r.status().is_success(),
                "uploading a recording failed: {}",
                r.text().await?
            );
        }
        let r = http
            .post(format!("{base}/v1/events"))
            .bearer_auth(&args.token)
            .json(&json!({"events": c.events}))
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "posting events failed: {}",
            r.text().await?
        );
        if !quiet {
            println!("{} ({} events)", c.summary, c.events.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_calls_are_valid_events() {
        let mut rng = StdRng::seed_from_u64(7);
        for n in 0..200 {
            let c = call(&mut rng, "demo", n, 1_795_341_600_000);
            for e in &c.events {
                if let Err(msg) = crate::model::event::parse_event(e.clone()) {
                    panic!("{}: {msg}", e["type"]);
                }
            }
            assert!(c.events.len() >= 3);
            for (_, bytes) in &c.files {
                assert_eq!(&bytes[..4], b"RIFF");
            }
        }
    }
}
