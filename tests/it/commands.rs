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
