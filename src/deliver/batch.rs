//! The window scheduler of batch integrations. Boundaries are multiples of the interval since
//! the epoch (so `600` closes at :00, :10, :20 …). At each boundary T the store closes the
//! window in one step: the queued calls that ended before T − delay become the batch's parts,
//! and T is recorded as closed. A call ingested after its window closed is still queued, so it
//! goes out with the next batch; a restart closes the current boundary once, carrying every call
//! whose window passed while the node was down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::Dispatcher;
use crate::model::integration::DeliveryMode;
use crate::store::BatchWindow;

/// How often boundaries are checked: a window closes at most this late.
const TICK: Duration = Duration::from_millis(200);

pub async fn run(d: Arc<Dispatcher>) {
    let mut closed: HashMap<String, i64> = HashMap::new();
    loop {
        // On the node's clock: a test that moves the clock past a boundary wakes this at once.
        tokio::select! {
            _ = d.clock.sleep(TICK) => {}
            _ = d.shutdown.cancelled() => return,
        }
        let now = d.clock.now_ms();
        for i in d.cache.all() {
            let spec = &i.valid.spec;
            // Profiles that send one record per request hold each delivery until its
            // window's boundary instead (`ValidSpec::held_until`): no window to close.
            if spec.delivery.mode != DeliveryMode::Batch || !spec.profile.collects() {
                continue;
            }
            let interval = spec.delivery.interval_s.unwrap_or(300).max(1) as i64 * 1000;
            let delay = spec.delivery.delay_s.unwrap_or(0) as i64 * 1000;
            let boundary = now - now.rem_euclid(interval);
            if closed.get(&i.id).is_some_and(|t| *t >= boundary) {
                continue;
            }
            let owner = match (&i.tenant_id, &i.partner_id) {
                (Some(t), _) => t.clone(),
                (None, Some(p)) => format!("partner:{p}"),
                (None, None) => continue,
            };
            let window = BatchWindow {
                integration_id: i.id.clone(),
                owner,
                boundary,
                cutoff: boundary - delay,
                window_start: boundary - delay - interval,
                feed: spec.feed,
                render_item: crate::render::window_item(spec),
                lease: d.lease(),
                now,
            };
            match d.store.close_window(window).await {
                Ok(jobs) => {
                    closed.insert(i.id.clone(), boundary);
                    if !jobs.is_empty() {
                        tracing::debug!(integration = %i.id, parts = jobs.len(), "batch window closed");
                    }
                    d.dispatch(jobs);
                }
                Err(e) => {
                    tracing::warn!(error = %e, integration = %i.id, "closing a batch window failed; retrying")
                }
            }
        }
    }
}
