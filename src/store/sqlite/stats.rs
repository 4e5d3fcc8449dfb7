//! Per-minute delivery counts ([`Stats`]): read for the charts, forgotten after two days. They
//! are written with the outcomes ([`super::queue`]).

use async_trait::async_trait;

use super::*;
use crate::store::ports::*;

#[async_trait]
impl Stats for SqliteStore {
    async fn minute_counts(
        &self,
        integration_ids: &[String],
        since_minute: i64,
    ) -> StoreResult<Vec<(i64, i64, i64)>> {
        if integration_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = integration_ids.to_vec();
        self.read(move |c| {
            // In groups, well under SQLite's limit on bound parameters; repeats of a minute and
            // kind across groups are summed by the caller.
            let mut out = Vec::new();
            for group in ids.chunks(500) {
                let marks = vec!["?"; group.len()].join(", ");
                let sql = format!(
                    "SELECT minute, kind, SUM(n) FROM minute_counts
                     WHERE integration_id IN ({marks}) AND minute >= ? GROUP BY minute, kind"
                );
                let mut st = c.prepare(&sql).map_err(internal)?;
                let params = group
                    .iter()
                    .map(|i| rusqlite::types::Value::from(i.clone()))
                    .chain([since_minute.into()]);
                let rows = st
                    .query_map(rusqlite::params_from_iter(params), |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .map_err(internal)?;
                for row in rows {
                    out.push(row.map_err(internal)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn forget_minutes(&self, before_minute: i64) -> StoreResult<u64> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM minute_counts WHERE minute < ?1")
                .and_then(|mut st| st.execute([before_minute]))
                .map(|n| n as u64)
                .map_err(internal)
        })
        .await
    }
}
