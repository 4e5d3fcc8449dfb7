//! Rendering: the payload a delivery carries, shaped by the integration's profile, with its
//! privacy rules applied and encoded in its format; and its signature. Pure functions; no I/O.
//!
//! Each profile is a module that turns a stored event into a JSON object. Privacy rules run on
//! that object ([`privacy`]), then it is encoded once: JSON, a form body, or a GET query string.
//! Profiles are versioned: adding a field is not breaking; removing or renaming one needs a new
//! profile name (as `recording.v1` → `recording.v2`).

pub mod cache;
mod call_history;
mod call_state;
mod canonical;
pub mod cdr;
pub mod fields;
pub mod form;
#[cfg(test)]
mod golden;
pub mod privacy;
pub mod recording;
pub mod samples;
pub mod shapes;
pub mod sign;
pub mod webex;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::model::event::{EventKind, StoredEvent};
use crate::model::integration::{Format, HttpMethod, PrivacyAction, ValidSpec};
pub use crate::model::profile::Profile;
use crate::security::links::Links;

/// What rendering needs besides the event and the settings.
pub struct RenderContext<'a> {
    pub integration_id: &'a str,
    pub delivery_id: &'a str,
    pub trigger: EventKind,
    pub custom_data: Option<&'a Map<String, Value>>,
    /// Signs recording URLs; `None` renders bare file ids (tests, samples).
    pub links: Option<&'a Links>,
    /// The attempt's send time: recording URLs expire 30 minutes after it.
    pub now_ms: i64,
    /// Parts shared between integrations; `None` serialises everything afresh.
    pub cache: Option<&'a cache::RenderCache>,
}

/// A rendered request: the body (empty for GET), its content type, and for GET the query
/// string. `signed` is the exact bytes the signature covers.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Bytes,
    pub content_type: Option<&'static str>,
    pub query: Option<String>,
    /// Headers the profile adds (a `webex-cdr` window's span and part, whose body is Webex's
    /// bare `{"items": […]}`).
    pub headers: Vec<(&'static str, String)>,
}

impl Rendered {
    pub fn signed(&self) -> &[u8] {
        match &self.query {
            Some(q) => q.as_bytes(),
            None => &self.body,
        }
    }
}

pub const JSON: &str = "application/json; charset=utf-8";
pub const FORM: &str = "application/x-www-form-urlencoded";

fn reparse(event: &StoredEvent) -> Option<StoredEvent> {
    let value = serde_json::from_str(&event.body).ok()?;
    let parsed = crate::model::event::parse_stored(value).ok()?;
    Some(StoredEvent {
        seq: event.seq,
        event: parsed,
        body: event.body.clone(),
    })
}

/// Why a payload could not be rendered: only a template can fail, and it fails the same way
/// on every attempt, so the delivery fails without a retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    #[error("the template, {0}")]
    Template(#[from] crate::model::template::TemplateError),
    #[error("profile `template` has no template; edit the integration")]
    NoTemplate,
}

/// The payload object of a profile, before privacy and encoding (for `template`, the template's
/// input: the canonical payload).
pub fn payload(event: &StoredEvent, spec: &ValidSpec, ctx: &RenderContext) -> Map<String, Value> {
    let e = &event.event;
    let options = &spec.spec.options;
    match spec.spec.profile {
        Profile::Canonical | Profile::Template => {
            let mut out = Map::new();
            out.insert(
                "delivery_id".into(),
                Value::String(ctx.delivery_id.to_string()),
            );
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&event.body) {
                out.extend(m);
            }
            out
        }
        Profile::RecordingV2 => recording::render(e, ctx, options, true),
        Profile::RecordingV1 => recording::render(e, ctx, options, false),
        Profile::CallHistory => call_history::render(e, ctx.trigger, ctx, options),
        Profile::Cdr => cdr::render(e, ctx),
        Profile::CallState => call_state::render(e),
        // The batch object was assembled when its window closed; it is sent as it is.
        Profile::CdrBatch => e.data.clone(),
        // A window's records were rendered when it closed; a single call's are rendered now.
        Profile::WebexCdr if e.kind == EventKind::CdrBatch => {
            let mut out = Map::new();
            out.insert(
                "items".into(),
                e.data.get("items").cloned().unwrap_or(Value::Array(vec![])),
            );
            out
        }
        Profile::WebexCdr => webex::render(e),
    }
}

/// How a batch integration's window turns each call into an item: a `webex-cdr` record or a
/// `cdr-batch` CDR, with the integration's privacy rules applied item by item.
pub fn window_item(
    spec: &crate::model::integration::IntegrationSpec,
) -> crate::store::ItemRenderer {
    let privacy = spec.privacy.clone();
    match spec.profile {
        Profile::WebexCdr => {
            crate::store::ItemRenderer::new(move |e| webex::batch_item(e, &privacy))
        }
        _ => crate::store::ItemRenderer::new(move |e| cdr::batch_item(e, &privacy)),
    }
}

/// Whether the payload for `spec` is the stored body spliced — the common case, canonical JSON
/// without privacy rules: no parse and no serialisation per attempt, and the event's `data`
/// is not needed at all.
pub fn splices_body(spec: &ValidSpec) -> bool {
    let s = &spec.spec;
    s.profile == Profile::Canonical
        && !s.privacy.values().any(|r| r.action != PrivacyAction::Keep)
        && s.method != HttpMethod::Get
        && s.format == Format::Json
}

/// Renders `event` for one attempt to an integration with `spec`.
pub fn render(
    event: &StoredEvent,
    spec: &ValidSpec,
    ctx: &RenderContext,
) -> Result<Rendered, RenderError> {
    let mut r = render_body(event, spec, ctx)?;
    if spec.spec.profile == Profile::WebexCdr && event.event.kind == EventKind::CdrBatch {
        r.headers = window_headers(&event.event.data);
    }
    Ok(r)
}

/// `callhook-window: <start>/<end>` (ISO 8601 interval: calls that ended in it),
/// `callhook-part: <n>/<parts>` and, for partner feeds, `callhook-feed`.
fn window_headers(batch: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let text = |path: &str| fields::str_at(batch, path).unwrap_or_default().to_string();
    let num = |key: &str| batch.get(key).and_then(Value::as_u64).unwrap_or(1);
    let mut out = vec![
        (
            "callhook-window",
            format!("{}/{}", text("window.start"), text("window.end")),
        ),
        ("callhook-part", format!("{}/{}", num("part"), num("parts"))),
    ];
    if let Some(feed) = fields::str_at(batch, "feed") {
        out.push(("callhook-feed", feed.to_string()));
    }
    out
}

fn render_body(
    event: &StoredEvent,
    spec: &ValidSpec,
    ctx: &RenderContext,
) -> Result<Rendered, RenderError> {
    let s = &spec.spec;
    if splices_body(spec) {
        return Ok(json(canonical::render(&event.body, ctx.delivery_id)));
    }
    // An event claimed for a splicing integration comes without `data`; if the integration
    // changed since, parse the body now. (An event whose data really is empty parses to the
    // same thing.)
    let parsed;
    let event = if event.event.data.is_empty() {
        parsed = reparse(event);
        parsed.as_ref().unwrap_or(event)
    } else {
        event
    };
    // `cdr` as JSON: the record is serialised once per event and privacy rules, and each
    // integration's own fields are spliced around it.
    if s.profile == Profile::Cdr && s.method != HttpMethod::Get && s.format == Format::Json {
        let record = match ctx.cache {
            Some(c) => c.cdr_record(event, &s.privacy),
            None => cdr::record_json(&event.event, &s.privacy),
        };
        return Ok(json(cdr::splice(
            ctx.integration_id,
            &event.event.tenant_id,
            &record,
            ctx.custom_data,
        )));
    }
    let needs_privacy = s.privacy.values().any(|r| r.action != PrivacyAction::Keep);
    let mut out = payload(event, spec, ctx);
    if needs_privacy {
        privacy::apply(&mut out, s.profile, &event.event, ctx.trigger, &s.privacy);
    }
    if s.profile == Profile::Template {
        let body = match s.compiled_template() {
            Some(Ok(template)) => template.render(&out)?,
            Some(Err(e)) => return Err(e.clone().into()),
            None => return Err(RenderError::NoTemplate),
        };
        return Ok(json(Bytes::from(body)));
    }
    if s.method == HttpMethod::Get {
        return Ok(Rendered {
            body: Bytes::new(),
            content_type: None,
            query: Some(form::encode(&out)),
            headers: Vec::new(),
        });
    }
    Ok(match s.format {
        Format::Json => json(Bytes::from(serde_json::to_vec(&out).unwrap_or_default())),
        Format::Form => Rendered {
            body: Bytes::from(form::encode(&out)),
            content_type: Some(FORM),
            query: None,
            headers: Vec::new(),
        },
    })
}

fn json(body: Bytes) -> Rendered {
    Rendered {
        body,
        content_type: Some(JSON),
        query: None,
        headers: Vec::new(),
    }
}
