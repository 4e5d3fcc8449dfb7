//! The event log in `seq` order: one writer commits events in the order of their `seq`, so
//! whatever a reader sees after a position is everything that will ever be there.

use async_trait::async_trait;
use rusqlite::Connection;

use super::*;
use crate::store::*;

#[async_trait]
impl Tail for SqliteStore {
    async fn tail_head(&self) -> StoreResult<Cursor> {
        self.read(|c| {
            c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|seq| Cursor { xid: 0, seq })
            .map_err(internal)
        })
        .await
    }

    async fn tail(&self, tenant: Option<&str>, after: Cursor, limit: u32) -> StoreResult<TailPage> {
        let tenant = tenant.map(str::to_string);
        self.read(move |c| tail(c, tenant.as_deref(), after.seq, limit))
            .await
    }
}

fn tail(c: &Connection, tenant: Option<&str>, after: i64, limit: u32) -> StoreResult<TailPage> {
    let rows: Vec<(i64, String)> = match tenant {
        Some(t) => c
            .prepare_cached(
                "SELECT seq, body FROM events WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )
            .and_then(|mut st| {
                st.query_map(rusqlite::params![t, after, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            }),
        None => c
            .prepare_cached("SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .and_then(|mut st| {
                st.query_map(rusqlite::params![after, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            }),
    }
    .map_err(internal)?;
    Ok(crate::store::shared::tail_page(
        rows.into_iter()
            .map(|(seq, body)| (Cursor { xid: 0, seq }, body))
            .collect(),
    ))
}
