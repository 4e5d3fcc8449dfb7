//! `--scenario scale-out`: nodes as separate `callhook serve` processes on one PostgreSQL
//! database, each held to a fraction of a core by a cgroup of its own, so that "more nodes,
//! more throughput" gets a number on a machine with two cores. Uncapped, one node already keeps
//! both cores busy and a second one can only add overhead (docs/performance.md, "Two nodes on one
//! machine"); capped, each node is bounded by its share as it would be by a machine of its own,
//! while the database, the receiver and the load generator (this process) stay uncapped.
//!
//! The cap is the cgroup CPU controller's quota (`cpu.cfs_quota_us` over `cpu.cfs_period_us` in
//! cgroup v1, `cpu.max` in v2), written as root. Each run reports how often the cap throttled
//! its nodes (it must, or the cap was not the limit) and how busy the machine was (it must not be
//! saturated, or the machine was the limit).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::load::TOKEN;
use super::measure::stat_cpu_seconds;

/// A node process in its cgroup.
pub(crate) struct NodeProcess {
    child: tokio::process::Child,
    pid: u32,
    cgroup: Cgroup,
}

/// The CPU controller's directory of one node.
struct Cgroup {
    dir: PathBuf,
}

const PERIOD_US: u64 = 100_000;

impl Cgroup {
    fn create(name: &str, cpu: f64) -> anyhow::Result<Cgroup> {
        let quota = (cpu * PERIOD_US as f64).round() as u64;
        anyhow::ensure!(
            quota >= 1000,
            "--cpu-per-node {cpu} is below the controller's minimum (0.01 core)"
        );
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let root = if v2 {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            PathBuf::from("/sys/fs/cgroup/cpu")
        };
        let probe = if v2 {
            "cgroup.procs"
        } else {
            "cpu.cfs_quota_us"
        };
        anyhow::ensure!(
            root.join(probe).exists(),
            "the scale-out scenario caps each node with the cgroup CPU controller, which is not at {} here",
            root.display()
        );
        let dir = root.join(name);
        std::fs::create_dir(&dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the cgroup {} (the scale-out scenario runs as root): {e}",
                dir.display()
            )
        })?;
        let group = Cgroup { dir };
        if v2 {
            group.write("cpu.max", &format!("{quota} {PERIOD_US}"))?;
        } else {
            group.write("cpu.cfs_period_us", &PERIOD_US.to_string())?;
            group.write("cpu.cfs_quota_us", &quota.to_string())?;
        }
        Ok(group)
    }

    fn write(&self, file: &str, value: &str) -> anyhow::Result<()> {
        std::fs::write(self.dir.join(file), value)
            .map_err(|e| anyhow::anyhow!("{}/{file}: {e}", self.dir.display()))
    }

    /// Moves a process (all its threads) into the group.
    fn add(&self, pid: u32) -> anyhow::Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// (periods, periods in which the group was throttled) so far.
    fn throttling(&self) -> (u64, u64) {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        (field("nr_periods "), field("nr_throttled "))
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Succeeds once the group's processes have exited.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Starts `count` nodes of this very binary on `config`'s database, each capped at `cpu` cores;
/// returns them with their base URLs once every one answers `/readyz`.
pub(crate) async fn spawn(
    config: &crate::config::Config,
    count: usize,
    cpu: f64,
    dir: &Path,
) -> anyhow::Result<(Vec<NodeProcess>, Vec<String>)> {
    let exe = std::env::current_exe()?;
    let run = hex::encode(crate::security::random_bytes::<4>());
    let (mut nodes, mut bases) = (Vec::new(), Vec::new());
    for k in 0..count {
        let port = free_port()?;
        let data = dir.join(format!("node-{k}"));
        std::fs::create_dir_all(&data)?;
        let log = std::fs::File::create(data.join("node.log"))?;
        let cgroup = Cgroup::create(&format!("callhook-bench-{run}-{k}"), cpu)?;
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("serve")
            .env("CALLHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("CALLHOOK_DATA_DIR", &data)
            .env("CALLHOOK_ADMIN_TOKEN", TOKEN)
            .env("CALLHOOK_ALLOW_INSECURE_HTTP", "true")
            .env("CALLHOOK_ALLOW_PRIVATE_DESTINATIONS", "true")
            .env("CALLHOOK_SHUTDOWN_GRACE_MS", "1000")
            .env("CALLHOOK_LOG", "warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some(url) = &config.database_url {
            cmd.env("CALLHOOK_DATABASE_URL", url);
        }
        if let Some(key) = &config.seal_key {
            cmd.env("CALLHOOK_SEAL_KEY", key);
        }
        let child = cmd.spawn()?;
        let pid = child.id().unwrap_or_default();
        let node = NodeProcess { child, pid, cgroup };
        node.cgroup.add(pid)?;
        nodes.push(node);
        bases.push(format!("http://127.0.0.1:{port}"));
    }
    let http = reqwest::Client::new();
    for base in &bases {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = http
                .get(format!("{base}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "node {base} was not ready within 60 s (its log is under {})",
                dir.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok((nodes, bases))
}

/// Stops the nodes (SIGKILL: a bench's nodes hold nothing worth a graceful shutdown once the
/// measurement is done) and waits for them, so their cgroups can be removed.
pub(crate) async fn stop(nodes: Vec<NodeProcess>) {
    for mut node in nodes {
        let _ = node.child.kill().await;
        drop(node.cgroup);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// CPU seconds used so far by the nodes, by the database's processes, and by the whole machine
/// (busy, all cores), with the machine's wall-clock core-seconds to read the last against.
pub(crate) struct CpuMark {
    nodes: f64,
    database: f64,
    machine_busy: f64,
    machine_all: f64,
    throttling: Vec<(u64, u64)>,
}

pub(crate) fn mark(nodes: &[NodeProcess]) -> CpuMark {
    let (busy, all) = machine_ticks();
    CpuMark {
        nodes: nodes.iter().map(|n| process_cpu_seconds(n.pid)).sum(),
        database: database_cpu_seconds(),
        machine_busy: busy,
        machine_all: all,
        throttling: nodes.iter().map(|n| n.cgroup.throttling()).collect(),
    }
}

/// What the nodes, the database and the machine spent between two marks, per delivery.
pub(crate) fn spent(before: &CpuMark, after: &CpuMark, deliveries: u64) -> Value {
    let per = |s: f64| (s / deliveries.max(1) as f64 * 1e6 * 10.0).round() / 10.0;
    let throttled: Vec<Value> = before
        .throttling
        .iter()
        .zip(&after.throttling)
        .map(|((p0, t0), (p1, t1))| {
            let periods = p1.saturating_sub(*p0).max(1);
            json!(((t1.saturating_sub(*t0)) as f64 / periods as f64 * 1000.0).round() / 10.0)
        })
        .collect();
    let busy = after.machine_busy - before.machine_busy;
    let all = (after.machine_all - before.machine_all).max(f64::MIN_POSITIVE);
    json!({
        "node_cpu_us_per_delivery": per(after.nodes - before.nodes),
        "database_cpu_us_per_delivery": per(after.database - before.database),
        "machine_busy_pct": (busy / all * 1000.0).round() / 10.0,
        "periods_throttled_pct": throttled,
    })
}

/// utime + stime of a process, in seconds.
fn process_cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat")).unwrap_or(0.0)
}

/// The CPU of every process named `postgres` on the machine (the server the bench was given is
/// on this machine in the documented set-up; a remote one counts as 0).
pub(crate) fn database_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|e| stat_cpu_seconds(&e.path().join("stat").to_string_lossy()))
        .sum()
}

/// (busy, all) CPU seconds of the whole machine since boot, from /proc/stat.
fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return (0.0, 0.0);
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let all: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    ((all - idle) / 100.0, all / 100.0)
}

/// How many load clients for `count` nodes: at least the asked-for number, the same for every
/// node.
pub(crate) fn clients_for(asked: usize, count: usize) -> usize {
    asked.max(count).div_ceil(count) * count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_gets_the_same_number_of_clients() {
        assert_eq!(clients_for(8, 1), 8);
        assert_eq!(clients_for(8, 2), 8);
        assert_eq!(clients_for(8, 3), 9);
        assert_eq!(clients_for(1, 3), 3);
    }

    #[test]
    fn the_machines_cpu_is_read_and_busy_is_at_most_all() {
        let (busy, all) = machine_ticks();
        assert!(all > 0.0 && busy <= all, "{busy} {all}");
        assert!(process_cpu_seconds(std::process::id()) >= 0.0);
    }
}
