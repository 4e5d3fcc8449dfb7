//! The event log in visibility order. An identity `seq` is taken when a row is inserted, not
//! when its transaction commits, so `seq` order is not the order events become visible: with
//! two ingests in flight, seq 11 can commit before seq 10, and a reader that went on past 11
//! would never see 10. Each event also records the id of the transaction that stored it
//! (`xid`, migration 9), and the log is read in `(xid, seq)` order, only as far as the oldest
//! transaction still running (`pg_snapshot_xmin`): every transaction older than that is
//! committed or gone, so nothing can appear behind a position once it was read. The price is
//! that a long-running writing transaction holds the stream back until it ends.

use async_trait::async_trait;

use super::*;
use crate::store::ports::*;

/// Transactions at or after this one may still be running: only older ones are read.
const VISIBLE: &str = "e.xid < pg_snapshot_xmin(pg_current_snapshot())";

#[async_trait]
impl Tail for PgStore {
    async fn tail_head(&self) -> StoreResult<Cursor> {
        let sql = format!(
            "SELECT e.xid::text::int8, e.seq FROM events e WHERE {VISIBLE}
             ORDER BY e.xid DESC, e.seq DESC LIMIT 1"
        );
        on_conn!(self, |c| query(&c, &sql, &[])
            .await?
            .first()
            .map(|r| Cursor {
                xid: r.get(0),
                seq: r.get(1),
            })
            .unwrap_or_default())
    }

    async fn tail(&self, tenant: Option<&str>, after: Cursor, limit: u32) -> StoreResult<TailPage> {
        let limit = limit as i64;
        let rows = match tenant {
            Some(t) => {
                let sql = format!(
                    "SELECT e.xid::text::int8, e.seq, e.body FROM events e
                     WHERE e.tenant_id = $4 AND (e.xid, e.seq) > ($1::int8::text::xid8, $2) AND {VISIBLE}
                     ORDER BY e.tenant_id, e.xid, e.seq LIMIT $3"
                );
                on_conn!(self, |c| query(
                    &c,
                    &sql,
                    &[&after.xid, &after.seq, &limit, &t]
                )
                .await?)?
            }
            None => {
                let sql = format!(
                    "SELECT e.xid::text::int8, e.seq, e.body FROM events e
                     WHERE (e.xid, e.seq) > ($1::int8::text::xid8, $2) AND {VISIBLE}
                     ORDER BY e.xid, e.seq LIMIT $3"
                );
                on_conn!(self, |c| query(&c, &sql, &[&after.xid, &after.seq, &limit])
                    .await?)?
            }
        };
        Ok(crate::store::shared::tail_page(
            rows.iter()
                .map(|r| {
                    let cursor = Cursor {
                        xid: r.get(0),
                        seq: r.get(1),
                    };
                    (cursor, r.get::<_, String>(2))
                })
                .collect(),
        ))
    }
}
