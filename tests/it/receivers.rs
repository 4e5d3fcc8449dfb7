//! The receivers of the README's guide (`contrib/receivers/`), run as they are: Python and
//! JavaScript, each verifying with the official Standard Webhooks library of its ecosystem
//! (`standardwebhooks` from PyPI and from npm; `scripts/install-test-deps` installs both). Each
//! answers the challenge, verifies deliveries, keeps verifying through a signing-secret rotation
//! on the old secret and on the new, and refuses deliveries signed with another secret.

use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::support::*;

const BEARER: &str = "receiver-secret-5678";

/// One of the guide's receivers, running.
struct Snippet {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    url: String,
}

impl Snippet {
    async fn start(program: &str, script: &str, signing_secret: &str) -> Snippet {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut child = Command::new(program)
            .arg(format!("{root}/{script}"))
            .arg("0")
            .env("CALLHOOK_SIGNING_SECRET", signing_secret)
            .env("RECEIVER_SECRET", BEARER)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} {script}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .ok()
            .and_then(|l| l.ok().flatten())
            .unwrap_or_default();
        let port = first.strip_prefix("listening on ").unwrap_or_else(|| {
            panic!(
                "{script} did not start (its library missing? run scripts/install-test-deps): {first:?}"
            )
        });
        Snippet {
            _child: child,
            lines,
            url: format!("http://127.0.0.1:{port}/hooks/calls"),
        }
    }

    /// The next `n` deliveries the receiver verified and handled.
    async fn handled(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            let line =
                tokio::time::timeout(std::time::Duration::from_secs(10), self.lines.next_line())
                    .await
                    .unwrap_or_else(|_| panic!("{} of {n} deliveries verified in 10 s", out.len()))
                    .ok()
                    .flatten()
                    .expect("the receiver exited");
            out.push(serde_json::from_str(&line).expect("a JSON line"));
        }
        out
    }
}

async fn the_guides_receiver_verifies_deliveries_through_a_rotation(program: &str, script: &str) {
    let server = TestServer::start().await;
    let api = server.tenant("acme").await;
    // The signing secret exists once the integration does: created pointing nowhere, then
    // pointed at the receiver configured with it (which runs the challenge, answered by it).
    let i = api
        .integration(
            "acme",
            json!({"name": "guide", "url": "http://127.0.0.1:9/", "event_types": ["ivr.input"],
                   "verification": "none", "secret": BEARER}),
        )
        .await;
    let iid = i["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/v1/tenants/acme/integrations/{iid}");
    let old = i["signing_secret"].as_str().unwrap_or_default().to_string();
    let mut on_old = Snippet::start(program, script, &old).await;
    let (st, v) = api.patch(&path, json!({"url": on_old.url})).await;
    assert_eq!(st, 200, "the challenge, answered by {script}: {v}");
    server
        .ingest(json!({"events": ivr_events("acme", 0..3)}))
        .await;
    let got = on_old.handled(3).await;
    assert!(got.iter().all(|d| d["type"] == "ivr.input"), "{got:?}");

    // A rotation: deliveries carry both signatures for 24 h; the receiver still on the old
    // secret verifies them, and so does one given the new secret.
    let (st, r) = api
        .post(&format!("{path}/rotate-signing-secret"), json!({}))
        .await;
    assert_eq!(st, 200, "{r}");
    let new = r["signing_secret"].as_str().unwrap_or_default().to_string();
    server
        .ingest(json!({"events": ivr_events("acme", 3..5)}))
        .await;
    assert_eq!(on_old.handled(2).await.len(), 2);
    let mut on_new = Snippet::start(program, script, &new).await;
    let (st, v) = api.patch(&path, json!({"url": on_new.url})).await;
    assert_eq!(st, 200, "{v}");
    server
        .ingest(json!({"events": ivr_events("acme", 5..7)}))
        .await;
    assert_eq!(on_new.handled(2).await.len(), 2);

    // Given a secret that is not the integration's, the library refuses: the receiver answers
    // 400 and the attempt fails.
    let other = Snippet::start(program, script, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").await;
    let (st, v) = api.patch(&path, json!({"url": other.url})).await;
    assert_eq!(st, 200, "{v}");
    let (st, report) = api.post(&format!("{path}/test"), json!({})).await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(
        (report["success"].as_bool(), report["status_code"].as_u64()),
        (Some(false), Some(400)),
        "{report}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_receiver_of_the_guide_verifies_with_pypi_standardwebhooks() {
    the_guides_receiver_verifies_deliveries_through_a_rotation(
        "python3",
        "contrib/receivers/python/receiver.py",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_receiver_of_the_guide_verifies_with_npm_standardwebhooks() {
    the_guides_receiver_verifies_deliveries_through_a_rotation(
        "node",
        "contrib/receivers/node/receiver.js",
    )
    .await;
}

#[test]
fn the_readme_prints_the_receivers_the_suite_runs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    for (fence, file) in [
        ("```python\n", "contrib/receivers/python/receiver.py"),
        ("```js\n", "contrib/receivers/node/receiver.js"),
    ] {
        let code = std::fs::read_to_string(format!("{root}/{file}")).expect("receiver");
        assert!(
            readme.contains(&format!("{fence}{code}```")),
            "README.md must print {file} as it is"
        );
    }
}
