//! Retention: call data, deliveries, attempts and recording files older than
//! `CALLHOOK_RETENTION_HOURS` are removed by a background task, in small steps with pauses
//! between them, so that the single writer is never held for long and ingest and delivery go
//! on unhindered. Work still to be delivered (pending or blocked) is never removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{DynStore, PurgeReport, StoreResult};

/// Rows of each kind one step removes.
const STEP: u32 = 500;
/// Pause between steps: the writer serves everyone else meanwhile.
const PAUSE: Duration = Duration::from_millis(20);
/// How often the task looks for expired data.
const EVERY: Duration = Duration::from_secs(300);

/// Purges everything older than `before` (epoch ms); returns the totals. Recording files are
/// deleted after their rows are gone, so a crash in between leaves at worst an orphan file,
/// never a row pointing at nothing.
pub async fn purge_before(
    store: &DynStore,
    data_dir: &Path,
    before: i64,
) -> StoreResult<PurgeReport> {
    let mut total = PurgeReport::default();
    loop {
        let step = store.purge(before, STEP).await?;
        for r in &step.recordings {
            let path = recording_path(data_dir, &r.tenant_id, &r.file_id);
            if let Err(e) = tokio::fs::remove_file(&path).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(error = %e, file = %path.display(), "could not delete an expired recording");
                }
            }
        }
        let done = step.deliveries < STEP as u64
            && step.events < STEP as u64
            && step.recordings.len() < STEP as usize;
        total.deliveries += step.deliveries;
        total.attempts += step.attempts;
        total.events += step.events;
        total.recordings.extend(step.recordings);
        if done {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// Removes deleted tenants' call data (`tenant`'s, or every one's), in the same small steps,
/// until none is left; returns the rows removed. Started by the deletion (`DELETE /v1/tenants/{tid}`), and again on every
/// retention round, so a node stopped halfway finishes the work after its next start.
pub async fn purge_deleted_tenants(store: &DynStore, tenant: Option<&str>) -> StoreResult<u64> {
    let mut total = 0;
    while let Some(rows) = store.purge_deleted_tenant(tenant, STEP).await? {
        total += rows;
        tokio::time::sleep(PAUSE).await;
    }
    Ok(total)
}

pub fn recording_path(data_dir: &Path, tenant_id: &str, file_id: &str) -> PathBuf {
    data_dir.join("recordings").join(tenant_id).join(file_id)
}

/// Runs the purge every few minutes until shutdown.
pub async fn run(
    store: DynStore,
    data_dir: PathBuf,
    retention_hours: u32,
    clock: crate::clock::Clock,
    stop: CancellationToken,
) {
    let keep_ms = retention_hours as i64 * 3600 * 1000;
    loop {
        let before = clock.now_ms() - keep_ms;
        // Retention 0 keeps every event, delivery and recording.
        let purged = match retention_hours {
            0 => Ok(PurgeReport::default()),
            _ => purge_before(&store, &data_dir, before).await,
        };
        match purged {
            Ok(r) if r.total() > 0 => tracing::info!(
                deliveries = r.deliveries,
                attempts = r.attempts,
                events = r.events,
                recordings = r.recordings.len(),
                "retention purge"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention purge failed; trying again later"),
        }
        match purge_deleted_tenants(&store, None).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "deleted tenants' call data removed"),
            Err(e) => {
                tracing::warn!(error = %e, "could not remove deleted tenants' call data; trying again later")
            }
        }
        // The charts show a day; the per-minute counts are kept two, whatever the retention.
        let two_days_ago = crate::model::stats::minute(clock.now_ms()) - 2 * 24 * 60;
        if let Err(e) = store.forget_minutes(two_days_ago).await {
            tracing::warn!(error = %e, "could not forget old delivery counts; trying again later");
        }
        tokio::select! {
            _ = clock.sleep(EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}
