//! Per-minute delivery counts ([`Stats`]): read for the charts, forgotten after two days. They
//! are written with the outcomes ([`super::queue`]).

use async_trait::async_trait;

use super::*;
use crate::store::ports::*;

#[async_trait]
impl Stats for PgStore {
    async fn minute_counts(
        &self,
        integration_ids: &[String],
        since_minute: i64,
    ) -> StoreResult<Vec<(i64, i64, i64)>> {
        if integration_ids.is_empty() {
            return Ok(Vec::new());
        }
        on_conn!(self, |c| query(
            &c,
            "SELECT minute, kind, SUM(n)::int8 FROM minute_counts
             WHERE integration_id = ANY($1) AND minute >= $2 GROUP BY minute, kind",
            &[&integration_ids, &since_minute],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
    }

    async fn forget_minutes(&self, before_minute: i64) -> StoreResult<u64> {
        in_tx!(self, |tx| execute(
            &tx,
            "DELETE FROM minute_counts WHERE minute < $1",
            &[&before_minute]
        )
        .await?)
    }
}
