//! Regression tests for the holes found when the service was attacked as a hostile tenant and a
//! hostile client would: each test is named after the hole it closes.

mod recordings;

use serde_json::json;

use crate::support::*;

/// An ingest token for `tenant`, minted by the operator.
pub async fn ingest_token(server: &TestServer, tenant: &str) -> String {
    let (st, tok) = server
        .admin()
        .post(
            "/v1/tokens",
            json!({"role": "ingest", "tenant_id": tenant, "name": "pbx"}),
        )
        .await;
    assert_eq!(st, 201, "{tok}");
    tok["token"].as_str().unwrap_or_default().to_string()
}
