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
    for path in ["canonical", "call-state", "cdr ", "cdr-batch"] {
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
