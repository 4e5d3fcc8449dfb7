//! The embedded SQLite store: WAL, one group-committing writer thread ([`writer`]) and a small
//! pool of read connections used from blocking tasks, so reads never wait behind commits.

mod access;
mod admin;
mod pipeline;
pub use pipeline::ENABLE_STEP;
mod progress;
mod purge;
mod read;
mod schema;
mod windows;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::Connection;

use super::group::{merge_records, Group, RecordRequest};
use super::*;
use crate::model::tenancy::{Partner, Tenant, TokenRecord};
use writer::Writer;

async fn commit_records(writer: Writer, group: Vec<RecordRequest<pipeline::Claimed>>) {
    let (outcomes, lease, replies) = merge_records(group);
    let result = writer
        .write(move |c| pipeline::record(c, &outcomes, &lease))
        .await;
    replies.send(result);
}

pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    /// Attempt outcomes go to the writer together: one closure and one savepoint for all
    /// those queued meanwhile, not one each.
    records: Group<RecordRequest<pipeline::Claimed>>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

pub(crate) fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn open_conn(path: &Path, cache_kib: i64) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(internal)?;
    schema::configure(&conn, cache_kib).map_err(internal)?;
    Ok(conn)
}

impl SqliteStore {
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        let path = path.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| internal(format!("{}: {e}", dir.display())))?;
            }
            let mut conn = open_conn(&path, schema::WRITER_CACHE_KIB)?;
            schema::migrate(&mut conn).map_err(internal)?;
            // The database and its WAL hold call data: this user's only, whatever the umask.
            let name = path.file_name().map(|n| n.to_string_lossy().to_string());
            for suffix in ["", "-wal", "-shm"] {
                let file =
                    path.with_file_name(format!("{}{suffix}", name.as_deref().unwrap_or_default()));
                if file.exists() {
                    crate::security::private_file(&file)
                        .map_err(|e| internal(format!("{}: {e}", file.display())))?;
                }
            }
            Ok::<_, StoreError>((Writer::start(conn)?, path))
        })
        .await
        .map_err(internal)??;
        let (writer, path) = opened;
        Ok(SqliteStore {
            records: Group::start(
                writer.clone(),
                2,
                512,
                RecordRequest::weight,
                commit_records,
            ),
            writer,
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.write(f).await
    }

    async fn with_events(&self, heads: Vec<pipeline::Claimed>) -> StoreResult<Vec<DispatchJob>> {
        if heads.is_empty() {
            return Ok(Vec::new());
        }
        self.read(move |c| pipeline::jobs_with_events(c, heads))
            .await
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.idle.lock().pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_conn(&readers.path, schema::READER_CACHE_KIB)?,
            };
            let out = f(&conn);
            let mut idle = readers.idle.lock();
            if idle.len() < 8 {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(internal)?
    }
}

fn owned(s: &str) -> String {
    s.to_string()
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_partner(&self, partner: Partner) -> StoreResult<()> {
        self.write(move |c| admin::create_partner(c, &partner))
            .await
    }
    async fn get_partner(&self, id: &str) -> StoreResult<Option<Partner>> {
        let id = owned(id);
        self.read(move |c| admin::get_partner(c, &id)).await
    }
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        self.write(move |c| admin::create_tenant(c, &tenant)).await
    }
    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        let id = owned(id);
        self.read(move |c| admin::get_tenant(c, &id)).await
    }
    async fn update_tenant(&self, tenant: Tenant) -> StoreResult<()> {
        self.write(move |c| admin::update_tenant(c, &tenant)).await
    }
    async fn delete_tenant(&self, id: &str) -> StoreResult<bool> {
        let id = owned(id);
        self.write(move |c| admin::delete_tenant(c, &id)).await
    }
    async fn create_token(&self, token: TokenRecord) -> StoreResult<()> {
        self.write(move |c| admin::create_token(c, &token)).await
    }
    async fn find_token(&self, hash: [u8; 32]) -> StoreResult<Option<TokenRecord>> {
        self.read(move |c| admin::find_token(c, &hash)).await
    }
    async fn has_token_named(&self, name: &str) -> StoreResult<bool> {
        let name = owned(name);
        self.read(move |c| admin::has_token_named(c, &name)).await
    }
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        self.read(access::list_tokens).await
    }
    async fn delete_token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        let id = owned(id);
        self.write(move |c| access::delete_token(c, &id)).await
    }
    async fn end_session(&self, id: &str, expires_at: i64, now: i64) -> StoreResult<()> {
        let id = owned(id);
        self.write(move |c| access::end_session(c, &id, expires_at, now))
            .await
    }
    async fn session_ended(&self, id: &str) -> StoreResult<bool> {
        let id = owned(id);
        self.read(move |c| access::session_ended(c, &id)).await
    }
    async fn claim_setting(&self, name: &str, value: Vec<u8>) -> StoreResult<Vec<u8>> {
        let name = owned(name);
        self.write(move |c| access::claim_setting(c, &name, &value))
            .await
    }
    async fn insert_integration(
        &self,
        rec: IntegrationRecord,
        max: Option<u32>,
    ) -> StoreResult<()> {
        self.write(move |c| admin::insert_integration(c, &rec, max))
            .await
    }
    async fn update_integration(&self, rec: IntegrationRecord) -> StoreResult<()> {
        self.write(move |c| admin::update_integration(c, &rec))
            .await
    }
    async fn delete_integration(&self, id: &str) -> StoreResult<bool> {
        let id = owned(id);
        self.write(move |c| admin::delete_integration(c, &id)).await
    }
    async fn load_integrations(&self) -> StoreResult<Vec<IntegrationRecord>> {
        self.read(admin::load_integrations).await
    }
    async fn get_integration(&self, id: &str) -> StoreResult<Option<IntegrationRecord>> {
        let id = owned(id);
        self.read(move |c| admin::get_integration(c, &id)).await
    }
    async fn set_integration_health(&self, id: &str, health: IntegrationHealth) -> StoreResult<()> {
        let id = owned(id);
        self.write(move |c| admin::set_health(c, &id, &health))
            .await
    }
    async fn enable_integration(&self, id: &str, resend: bool, now: i64) -> StoreResult<u64> {
        use pipeline::ENABLE_STEP;
        let iid = owned(id);
        let i = iid.clone();
        let since = self
            .write(move |c| pipeline::enable_begin(c, &i))
            .await?
            .unwrap_or(i64::MAX);
        let mut queued = 0;
        if resend {
            loop {
                let i = iid.clone();
                let n = self
                    .write(move |c| pipeline::enable_resend_step(c, &i, since, now, ENABLE_STEP))
                    .await?;
                queued += n;
                if n == 0 {
                    break;
                }
            }
        }
        loop {
            let i = iid.clone();
            if self
                .write(move |c| pipeline::enable_promote_step(c, &i, now, ENABLE_STEP))
                .await?
                == 0
            {
                break;
            }
        }
        self.write(move |c| pipeline::enable_finish(c, &iid, now))
            .await?;
        Ok(queued)
    }
    async fn ingest(&self, batch: IngestBatch) -> StoreResult<IngestOutcome> {
        self.write(move |c| pipeline::ingest(c, batch)).await
    }
    async fn record(&self, outcomes: Vec<Outcome>, lease: Lease) -> StoreResult<Vec<DispatchJob>> {
        let heads = self
            .records
            .submit(|reply| RecordRequest {
                outcomes,
                lease,
                reply,
            })
            .await?;
        self.with_events(heads).await
    }
    async fn claim_due(
        &self,
        integration_id: &str,
        limit: u32,
        lease: Lease,
        now: i64,
        body_only: bool,
    ) -> StoreResult<Vec<DispatchJob>> {
        let id = owned(integration_id);
        let heads = self
            .write(move |c| pipeline::claim_due(c, &id, limit, &lease, now))
            .await?;
        if !body_only || heads.is_empty() {
            return self.with_events(heads).await;
        }
        self.read(move |c| pipeline::jobs_with_bodies(c, heads))
            .await
    }
    async fn next_due_at(&self, integration_id: &str) -> StoreResult<Option<i64>> {
        let id = owned(integration_id);
        self.read(move |c| read::next_due_at(c, &id)).await
    }
    async fn release(&self, delivery_ids: Vec<String>) -> StoreResult<()> {
        self.write(move |c| pipeline::release(c, &delivery_ids))
            .await
    }
    async fn recover(&self, _now: i64, _dead_after_ms: i64) -> StoreResult<u64> {
        // One node owns an SQLite file: every lease in it is this node's, from a previous run.
        self.write(pipeline::release_all).await
    }
    async fn integrations_with_pending(&self) -> StoreResult<Vec<String>> {
        self.read(read::integrations_with_pending).await
    }
    async fn list_deliveries(
        &self,
        integration_id: &str,
        filter: DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryView>> {
        let id = owned(integration_id);
        self.read(move |c| read::list_deliveries(c, &id, &filter))
            .await
    }
    async fn get_delivery(
        &self,
        id: &str,
    ) -> StoreResult<Option<(DeliveryView, Vec<AttemptView>)>> {
        let id = owned(id);
        self.read(move |c| read::get_delivery(c, &id)).await
    }
    async fn delivery_job(&self, id: &str) -> StoreResult<Option<DispatchJob>> {
        let id = owned(id);
        self.read(move |c| match pipeline::delivery_head(c, &id)? {
            None => Ok(None),
            Some(head) => Ok(pipeline::jobs_with_events(c, vec![head])?.pop()),
        })
        .await
    }
    async fn redeliver(&self, id: &str, lease: Lease, now: i64) -> StoreResult<DispatchJob> {
        let id = owned(id);
        let head = self
            .write(move |c| pipeline::redeliver(c, &id, &lease, now))
            .await?;
        self.with_events(vec![head])
            .await?
            .pop()
            .ok_or(StoreError::NotFound)
    }
    async fn redeliver_failed(
        &self,
        integration_id: &str,
        since: i64,
        until: i64,
        now: i64,
    ) -> StoreResult<u64> {
        let id = owned(integration_id);
        self.write(move |c| pipeline::redeliver_failed(c, &id, since, until, now))
            .await
    }
    async fn put_recording(&self, meta: RecordingMeta) -> StoreResult<()> {
        self.write(move |c| access::put_recording(c, &meta)).await
    }
    async fn get_recording(
        &self,
        tenant_id: &str,
        file_id: &str,
    ) -> StoreResult<Option<RecordingMeta>> {
        let (tid, id) = (owned(tenant_id), owned(file_id));
        self.read(move |c| access::get_recording(c, &tid, &id))
            .await
    }
    async fn close_window(&self, window: BatchWindow) -> StoreResult<Vec<DispatchJob>> {
        let heads = self
            .write(move |c| windows::close_window(c, window))
            .await?;
        self.with_events(heads).await
    }
    async fn cdr_counts(
        &self,
        scope: CdrScope,
        start: i64,
        end: i64,
        offset: u32,
        limit: u32,
    ) -> StoreResult<(Vec<(String, u64)>, u64)> {
        self.read(move |c| read::cdr_counts(c, &scope, start, end, offset, limit))
            .await
    }
    async fn cdr_records(
        &self,
        tenant_id: &str,
        scope: Option<CdrScope>,
        start: i64,
        end: i64,
        after: Option<(i64, i64)>,
        limit: u32,
    ) -> StoreResult<Vec<CdrRow>> {
        let tid = owned(tenant_id);
        self.read(move |c| read::cdr_records(c, &tid, &scope, start, end, after, limit))
            .await
    }
    async fn purge(&self, before: i64, limit: u32) -> StoreResult<PurgeReport> {
        self.write(move |c| purge::purge(c, before, limit)).await
    }
    async fn pending_stats(&self) -> StoreResult<(u64, Option<i64>)> {
        self.read(|c| {
            c.query_row(
                "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status IN ('pending', 'blocked')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(internal)
        })
        .await
    }
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(internal))
            .await?;
        self.write(|_| Ok(())).await
    }
}
