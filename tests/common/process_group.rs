//! Child programs that fork (Kamailio's workers, the Chromium that chromedriver starts) run in
//! their own process group, and dropping the handle stops the whole group: a test that passes
//! or panics leaves nothing running.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct ProcessGroup(Child);

impl ProcessGroup {
    pub fn spawn(cmd: &mut Command) -> std::io::Result<ProcessGroup> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        cmd.spawn().map(ProcessGroup)
    }

    /// Waits for the group leader to finish on its own, up to `limit`.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.0.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return None,
            }
        }
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.0.id())])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // TERM first: Kamailio's main process then stops its workers itself.
        self.signal_group("-TERM");
        self.wait_for_exit(Duration::from_secs(3));
        self.signal_group("-KILL");
        let _ = self.0.wait();
    }
}
