//! Nodes sharing the database ([`Membership`]): heartbeats that give a silent node's leases
//! up, change notices, and the configuration version this node's caches reflect.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio::sync::mpsc;

use super::*;
use crate::store::ports::*;

#[async_trait]
impl Membership for PgStore {
    async fn heartbeat(&self, node: &str, now: i64, dead_after_ms: i64) -> StoreResult<Beat> {
        in_tx!(self, |tx| heartbeat(&tx, node, now, dead_after_ms).await?)
    }
    fn shared(&self) -> bool {
        true
    }
    fn changes(&self) -> Option<mpsc::UnboundedReceiver<Notice>> {
        self.changes.lock().take()
    }
    fn applied(&self, version: i64) {
        self.applied.send_if_modified(|v| {
            let newer = version > *v;
            if newer {
                *v = version;
            }
            newer
        });
    }
    fn applied_version(&self) -> Option<i64> {
        Some(*self.applied.borrow())
    }
    async fn wait_applied(&self, version: i64, within: std::time::Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(within, rx.wait_for(|v| *v >= version))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Records this node as alive; removes nodes silent for `dead_after_ms` and gives their
/// leases up. Returns the integrations whose work was given up and the nodes left.
pub async fn heartbeat<C: GenericClient>(
    c: &C,
    node: &str,
    now: i64,
    dead_after_ms: i64,
) -> PgResult<Beat> {
    execute(
        c,
        "INSERT INTO nodes (id, started_at, heartbeat_at) VALUES ($1, $2, $2)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = $2",
        &[&node, &now],
    )
    .await?;
    let rows = query(
        c,
        "WITH dead AS (DELETE FROM nodes WHERE heartbeat_at < $1 RETURNING id)
         UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
         WHERE lease_owner IN (SELECT id FROM dead)
         RETURNING integration_id, status",
        &[&(now - dead_after_ms)],
    )
    .await?;
    let mut iids: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<_, &str>(1) == "pending")
        .map(|r| r.get(0))
        .collect();
    if !rows.is_empty() {
        tracing::warn!(
            deliveries = rows.len(),
            "took over the work of a node that stopped heartbeating"
        );
    }
    iids.sort();
    iids.dedup();
    let live: i64 = query(c, "SELECT count(*) FROM nodes", &[])
        .await?
        .first()
        .map_or(1, |r| r.get(0));
    Ok(Beat {
        taken_over: iids,
        live_nodes: usize::try_from(live).unwrap_or(1).max(1),
    })
}
