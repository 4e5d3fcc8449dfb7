//! `/v1/openapi.json`: the OpenAPI 3.1 document, generated from the handlers' annotations and
//! the request/response types themselves (utoipa), so it cannot drift from the code.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi};

use super::{
    catalogue, deliveries, events, health, integrations, notifications, partners, portal,
    reconciliation, recordings, sources, stats, tenants, tokens, AppState,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "callhook",
        description = "Call-event webhooks: ingest call data, route, render, sign and deliver it. \
                       Every endpoint but health, metrics and signed recording links takes \
                       `Authorization: Bearer <api token>`. Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        health::healthz, health::readyz, health::metrics,
        partners::create, partners::read, partners::update, partners::put_logo, partners::delete_logo,
        tenants::create, tenants::read, tenants::update, tenants::remove,
        tokens::create,
        tokens::list,
        tokens::revoke,
        portal::create_link, portal::list_sessions, portal::end_session,
        notifications::list, stats::tenant, stats::integration, catalogue::catalogue,
        events::ingest, sources::freeswitch_cdr,
        integrations::create, integrations::list, integrations::read, integrations::update,
        integrations::remove, integrations::verify, integrations::test, integrations::disable,
        integrations::enable, integrations::rotate, integrations::preview, integrations::stream,
        deliveries::list, deliveries::read, deliveries::redeliver_one, deliveries::redeliver_range,
        recordings::upload, recordings::download,
        reconciliation::counts, reconciliation::partner_records, reconciliation::tenant_records,
    ),
    modifiers(&BearerToken),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The whole document. A partner's feed integration has the same endpoints as a tenant's
/// (the router serves both bases from one function), so the partner paths are the tenant
/// ones with `{pid}` for `{tid}`.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let tenant_base = "/v1/tenants/{tid}/integrations";
    let partner_items: Vec<(String, PathItem)> = doc
        .paths
        .paths
        .iter()
        // A live stream is a tenant's (a partner's feed is a webhook).
        .filter(|(path, _)| path.starts_with(tenant_base) && !path.ends_with("/stream"))
        .map(|(path, item)| {
            let mut item = item.clone();
            for op in operations(&mut item) {
                for p in op.parameters.iter_mut().flatten() {
                    if p.name == "tid" {
                        p.name = "pid".into();
                    }
                }
                let tags = op.tags.take().unwrap_or_default();
                op.tags = Some(tags.iter().map(|t| format!("partner {t}")).collect());
            }
            (
                path.replacen("/v1/tenants/{tid}", "/v1/partners/{pid}", 1),
                item,
            )
        })
        .collect();
    doc.paths.paths.extend(partner_items);
    // The settings are refused with unknown fields (`deny_unknown_fields`), which utoipa writes
    // as `additionalProperties: false`. But the same schema is one part of an `allOf` (an
    // integration is its settings plus its state; a new one adds `secret`), where that would
    // forbid the other parts' fields. The request rule stays enforced by the server (422).
    if let Some(components) = doc.components.as_mut() {
        if let Some(RefOr::T(Schema::Object(spec))) = components.schemas.get_mut("IntegrationSpec")
        {
            spec.additional_properties = None;
        }
    }
    // Handler names repeat across resources (`create`, `read`…): qualify them by tag.
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            let tag = op
                .tags
                .as_ref()
                .and_then(|t| t.first())
                .cloned()
                .unwrap_or_default()
                .replace(' ', "_");
            op.operation_id = op.operation_id.take().map(|id| format!("{tag}.{id}"));
        }
    }
    doc
}

/// Serialised once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(document()).unwrap_or_default();
    catalogue::add_webhooks(&mut doc);
    catalogue::add_event_variants(&mut doc);
    super::tokens::state_roles(&mut doc);
    // What `additionalProperties: false` could not say of the settings inside an `allOf` (see
    // `document`), `unevaluatedProperties` (JSON Schema 2020-12) says of the whole: a new
    // integration takes its settings and `secret`, nothing else — as the server enforces.
    if let Some(schema) = doc.pointer_mut("/components/schemas/IntegrationIn") {
        if let Some(o) = schema.as_object_mut() {
            o.insert(
                "unevaluatedProperties".into(),
                serde_json::Value::Bool(false),
            );
        }
    }
    doc.to_string()
});

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/openapi.json",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "application/json")],
                DOCUMENT.as_str(),
            )
                .into_response()
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_once_with_a_unique_operation_id() {
        let mut doc = document();
        let paths: Vec<String> = doc.paths.paths.keys().cloned().collect();
        for expected in [
            "/v1/events",
            "/v1/tokens/{id}",
            "/v1/tenants/{tid}/integrations/{iid}/deliveries/{did}/redeliver",
            "/v1/partners/{pid}/integrations/{iid}/deliveries/{did}/redeliver",
            "/v1/partners/{pid}/integrations/{iid}/rotate-signing-secret",
            "/v1/partners/{pid}/reconciliation/counts",
            "/v1/recordings/{file_id}/content",
            "/v1/tenants/{tid}/portal-links",
            "/v1/tenants/{tid}/portal-sessions/{sid}",
        ] {
            assert!(paths.iter().any(|p| p == expected), "{expected} missing");
        }
        let mut ids = Vec::new();
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                ids.push(op.operation_id.clone().unwrap_or_default());
            }
        }
        let before = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), before, "operation ids repeat: {ids:?}");
        assert_eq!(before, 60);
        let partner = &doc.paths.paths["/v1/partners/{pid}/integrations/{iid}"];
        let get = partner.get.as_ref().map(|o| o.parameters.clone());
        let names: Vec<String> = get
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["pid", "iid"]);
    }
}
