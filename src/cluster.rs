//! Running as one of several nodes on a shared store: a heartbeat (so the others can take this
//! node's work over should it die, and it theirs), and following the changes the other nodes
//! commit to integrations and tenants, so every node obeys an edit or a disable at once.
//!
//! Every change carries the configuration version it made. The follower applies notices in
//! version order and tells the store how far it got; ingest refuses to route against caches
//! older than the store's configuration ([`catch_up`] then brings them level).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cache::Integration;
use crate::state::AppState;
use crate::store::Change;

/// Starts the heartbeat (the first one before returning, so this node is known before it
/// takes any work) and the change follower, when the store is shared.
pub async fn start(state: &AppState, stop: CancellationToken) -> anyhow::Result<()> {
    if !state.store.shared() {
        return Ok(());
    }
    let dead_after = state.config.node_timeout_ms.max(1000) as i64;
    let beat = state
        .store
        .heartbeat(state.dispatcher.node_id(), state.now_ms(), dead_after)
        .await?;
    state.dispatcher.set_live_nodes(beat.live_nodes);
    tokio::spawn(heartbeat(state.clone(), stop.clone()));
    if let Some(mut changes) = state.store.changes() {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                let notice = tokio::select! {
                    c = changes.recv() => c,
                    _ = stop.cancelled() => return,
                };
                let Some(notice) = notice else { return };
                if let Some(change) = notice.change {
                    apply(&state, change).await;
                }
                // In version order: this node now reflects everything up to this version.
                state.store.applied(notice.version);
            }
        });
    }
    Ok(())
}

async fn heartbeat(state: AppState, stop: CancellationToken) {
    let dead_after = state.config.node_timeout_ms.max(1000) as i64;
    let mut tick = tokio::time::interval(Duration::from_millis(dead_after as u64 / 5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = state.now_ms();
        match state
            .store
            .heartbeat(state.dispatcher.node_id(), now, dead_after)
            .await
        {
            Ok(beat) => {
                state.dispatcher.set_live_nodes(beat.live_nodes);
                for iid in beat.taken_over {
                    state.dispatcher.note_due(&iid, now);
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// Brings this node's caches up to configuration `version`: waits for the follower (it is
/// usually a few milliseconds behind), else reloads everything.
pub async fn catch_up(state: &AppState, version: i64) {
    if state
        .store
        .wait_applied(version, Duration::from_secs(2))
        .await
    {
        return;
    }
    tracing::warn!(
        version,
        "change notices are late; reloading the configuration"
    );
    apply(state, Change::Resync).await;
    state.store.applied(version);
}

/// Applies one change another node made.
pub async fn apply(state: &AppState, change: Change) {
    match change {
        Change::Integration(id) => reload_integration(state, &id).await,
        Change::Tenant(id) => {
            state.known_tenants.write().remove(&id);
            state.tokens.forget_tenant(&id);
        }
        Change::Token(id) => state.tokens.forget_id(&id),
        Change::Resync => {
            state.known_tenants.write().clear();
            state.tokens.forget_all();
            let mut ids = state.cache.ids();
            match state.store.load_integrations().await {
                Ok(all) => ids.extend(all.into_iter().map(|r| r.id)),
                Err(e) => tracing::warn!(error = %e, "could not reload integrations"),
            }
            ids.extend(state.unopened.ids());
            ids.sort();
            ids.dedup();
            for id in ids {
                reload_integration(state, &id).await;
            }
        }
    }
}

/// Forgets integrations that could not be opened and are gone from the store (deleted with
/// their tenant, or elsewhere while notices were missed), so they no longer hold the node
/// not-ready.
pub async fn recheck_unopened(state: &AppState) {
    for id in state.unopened.ids() {
        if let Ok(None) = state.store.get_integration(&id).await {
            state.unopened.resolved(&id);
        }
    }
}

async fn reload_integration(state: &AppState, id: &str) {
    let rec = match state.store.get_integration(id).await {
        Ok(rec) => rec,
        Err(e) => {
            tracing::warn!(error = %e, integration = id, "could not reload a changed integration");
            return;
        }
    };
    let Some(rec) = rec else {
        state.unopened.resolved(id);
        state.cache.remove(id);
        state.dispatcher.integration_changed(id);
        return;
    };
    let integration = match Integration::from_record(&rec, &state.sealer) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, integration = id, "a changed integration could not be opened (is CALLHOOK_SEAL_KEY the same on every node?): this node refuses events until it can");
            state.unopened.add(id);
            return;
        }
    };
    state.unopened.resolved(id);
    // Settings changed: new limits need a new worker. A health change (failing, disabled,
    // re-enabled) only needs the cache and this node's failure count to follow.
    let settings_changed = state
        .cache
        .get(id)
        .is_none_or(|prev| prev.valid != integration.valid);
    state.cache.put(integration);
    if settings_changed {
        state.dispatcher.integration_changed(id);
    } else {
        state.dispatcher.reset_health(id);
    }
    // Re-enabled elsewhere: what it queued again may be claimed here too.
    state.dispatcher.note_due(id, state.now_ms());
}
