//! The other commands of the binary, run as a user would.

use std::process::Command;

#[test]
fn demo_runs_every_profile_end_to_end_and_exits() {
    let out = Command::new(env!("CARGO_BIN_EXE_callhook"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--calls",
            "3",
            "--rate",
            "5",
        ])
        .env("CALLHOOK_LOG", "warn")
        .output()
        .expect("run demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = text
        .lines()
        .find(|l| l.starts_with("delivered:"))
        .unwrap_or_default();
    for path in ["canonical", "call-state", "cdr ", "webex-cdr"] {
        assert!(
            summary.contains(path),
            "no {path} deliveries in `{summary}`"
        );
    }
    assert!(!text.contains("SIGNATURE INVALID"));
    let console = text
        .lines()
        .find(|l| l.trim_start().starts_with("console"))
        .unwrap_or_default();
    assert!(
        console.contains("http://127.0.0.1:") && console.contains("/console"),
        "the console URL is printed: {text}"
    );
    assert!(text.contains("tenant admin   token chk_"));
}

#[test]
fn a_misspelt_log_setting_stops_the_start_and_names_the_setting() {
    let dir = tempfile::tempdir().expect("dir");
    for (var, value, expect) in [
        ("CALLHOOK_LOG_FORMAT", "yaml", "--log-format"),
        ("CALLHOOK_LOG", "callhook=loud", "is not a log filter"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_callhook"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CALLHOOK_DATA_DIR", dir.path())
            .env(var, value)
            .output()
            .expect("run serve");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value} was accepted");
        assert!(
            err.contains(expect) && err.contains(value),
            "{var}={value}: {err}"
        );
        assert!(
            !dir.path().join("callhook.db").exists(),
            "nothing is created before the configuration is valid"
        );
    }
}

/// `callhook backup` while the server runs, then a node started on the copy: integrations,
/// their secrets and signing keys, and the held deliveries all come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_integrations_secrets_and_held_deliveries() {
    use crate::support::*;
    use serde_json::json;
    let rx = Receiver::start().await;
    let server = TestServer::start_with(|c| {
        // The embedded store whatever backend the suite runs on: this is its backup.
        c.database_url = Some(format!(
            "sqlite://{}",
            c.data_dir.join("callhook.db").display()
        ));
    })
    .await;
    let api = server.tenant("acme").await;
    let i = api
        .integration(
            "acme",
            json!({"name": "crm", "url": rx.url, "event_types": ["ivr.input"],
                   "secret": "receiver-secret-1234"}),
        )
        .await;
    let iid = i["id"].as_str().unwrap_or_default().to_string();
    let signing = i["signing_secret"].as_str().unwrap_or_default().to_string();
    let (st, _) = api
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/disable"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        server
            .ingest(json!({"events": ivr_events("acme", 0..3)}))
            .await
            .0,
        202
    );
    api.wait_for_deliveries("acme", &iid, "held", 3).await;

    let copy = tempfile::tempdir().expect("dir");
    let target = copy.path().join("callhook-backup.db");
    let backup = |target: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_callhook"))
            .args(["backup", "--data-dir"])
            .arg(server.data_dir())
            .arg(target)
            .env_remove("CALLHOOK_DATABASE_URL")
            .output()
            .expect("run backup")
    };
    let out = backup(&target);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = backup(&target);
    assert!(!again.status.success(), "a backup never overwrites");
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    let seal_key = std::fs::read(server.data_dir().join("seal.key")).expect("seal key");
    server.stop().await;

    // Restore: the copy as the store of a new data dir, with the same sealing key.
    let restored_dir = tempfile::tempdir().expect("dir");
    std::fs::copy(&target, restored_dir.path().join("callhook.db")).expect("restore");
    std::fs::write(restored_dir.path().join("seal.key"), seal_key).expect("key");
    let mut config = dev_config(restored_dir.path());
    config.database_url = Some(format!(
        "sqlite://{}",
        restored_dir.path().join("callhook.db").display()
    ));
    let running = callhook::app::start(config)
        .await
        .expect("restored node starts");
    let restored = Api {
        base: format!("http://{}", running.addr),
        token: api.token.clone(),
        http: reqwest::Client::new(),
    };
    let (st, v) = restored
        .get(&format!("/v1/tenants/acme/integrations/{iid}"))
        .await;
    assert_eq!(
        (st, v["status"].as_str(), v["secret_hint"].as_str()),
        (200, Some("disabled"), Some("…1234"))
    );
    let (st, v) = restored
        .post(
            &format!("/v1/tenants/acme/integrations/{iid}/enable"),
            json!({"secret": "receiver-secret-1234"}),
        )
        .await;
    assert_eq!(st, 200, "the sealed receiver secret opened: {v}");
    let got = rx.take(3, 10).await;
    let wh = standardwebhooks::Webhook::new(&signing).expect("secret");
    assert!(
        got.iter().all(|r| wh.verify(&r.body, &r.headers).is_ok()
            && r.header("authorization") == "Bearer receiver-secret-1234"),
        "signed with the signing key from before the backup"
    );
    running.shutdown().await;
}

#[test]
fn a_config_file_is_checked_at_start_and_the_environment_wins_over_it() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("callhook.toml");
    let serve = |toml: &str, env: &[(&str, &str)]| {
        std::fs::write(&file, toml).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhook"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file)
            .env("CALLHOOK_DATA_DIR", dir.path().join("data"))
            .env_remove("CALLHOOK_LOG_FORMAT")
            .env_remove("CALLHOOK_CA_FILE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run serve");
        assert!(!out.status.success(), "{toml} started");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    // A misspelt key names itself and the settings there are.
    let err = serve("lissten = \"0.0.0.0:8080\"\n", &[]);
    assert!(
        err.contains("unknown setting `lissten`") && err.contains("listen,"),
        "{err}"
    );
    // A bad value is refused as the same setting from the environment would be.
    let err = serve("log_format = \"yaml\"\n", &[]);
    assert!(
        err.contains("--log-format") && err.contains("yaml"),
        "{err}"
    );
    // The environment wins: the file's bad log format is not used; its CA file is, and it stops
    // the start because it does not exist.
    let err = serve(
        "log_format = \"yaml\"\nca_file = \"/nonexistent/ca.pem\"\n",
        &[("CALLHOOK_LOG_FORMAT", "text")],
    );
    assert!(
        err.contains("CALLHOOK_CA_FILE") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
    assert!(
        !dir.path().join("data").join("callhook.db").exists(),
        "nothing is created before the configuration is valid"
    );
}
