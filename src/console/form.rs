//! The integration form, both ways: the settings JSON of the API from submitted form fields,
//! and form fields from stored settings. Pure; the API validates what comes out exactly as it
//! validates a JSON request, so the console can never save what the API would refuse.
//!
//! Form values are a flat map of strings (plus `event_types`, a list), so a form that failed
//! validation is shown again exactly as it was typed.

use serde_json::{json, Map, Value};

use crate::model::integration::PrivacyTarget;

pub const PRIVACY_TARGETS: [PrivacyTarget; 7] = [
    PrivacyTarget::LocalUserId,
    PrivacyTarget::LocalEmail,
    PrivacyTarget::LocalNumber,
    PrivacyTarget::RemoteUserId,
    PrivacyTarget::RemoteEmail,
    PrivacyTarget::RemoteNumber,
    PrivacyTarget::DeviceType,
];

const OPTIONS: [&str; 3] = ["include_transcript", "include_keywords", "include_summary"];

/// Submitted `application/x-www-form-urlencoded` fields, in order, repeats kept.
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed value, `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The form values as submitted (shown again when saving fails).
pub fn values_from_fields(f: &Fields) -> Map<String, Value> {
    let mut v = Map::new();
    for (k, val) in &f.0 {
        if k == "event_types" || k == "csrf" || k == "secret" {
            continue;
        }
        v.insert(k.clone(), json!(val));
    }
    v.insert("event_types".into(), json!(f.all("event_types")));
    v
}

/// Form values for stored settings (the API's representation of an integration).
pub fn values_from_settings(s: &Value) -> Map<String, Value> {
    let text = |v: Option<&Value>| match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let at = |path: &str| path.split('.').try_fold(s, |v, k| v.get(k));
    let mut v = Map::new();
    for key in [
        "name",
        "url",
        "method",
        "format",
        "profile",
        "verification",
        "secret_use",
        "feed",
    ] {
        v.insert(key.into(), json!(text(at(key))));
    }
    v.insert(
        "event_types".into(),
        at("event_types").cloned().unwrap_or(json!([])),
    );
    let headers = at("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .map(|(k, val)| format!("{k}: {}", val.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    v.insert("headers".into(), json!(headers));
    v.insert("template".into(), json!(text(at("template"))));
    v.insert(
        "tls_client_certificate".into(),
        json!(text(at("tls.client_certificate"))),
    );
    let pretty = |x: Option<&Value>| {
        x.filter(|x| !x.is_null() && x.as_array().is_none_or(|a| !a.is_empty()))
            .and_then(|x| serde_json::to_string_pretty(x).ok())
            .unwrap_or_default()
    };
    v.insert("custom_data".into(), json!(pretty(at("custom_data"))));
    v.insert("conditions".into(), json!(pretty(at("filters.conditions"))));
    for group in ["users", "answer_groups"] {
        let mode = text(at(&format!("filters.{group}.mode")));
        let ids = at(&format!("filters.{group}.ids"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let mode = if mode.is_empty() { "all".into() } else { mode };
        v.insert(format!("{group}_mode"), json!(mode));
        v.insert(format!("{group}_ids"), json!(ids));
    }
    for o in OPTIONS {
        if at(&format!("options.{o}")) != Some(&Value::Bool(false)) {
            v.insert(o.into(), json!("on"));
        }
    }
    for t in PRIVACY_TARGETS {
        let t = t.as_str();
        let action = text(at(&format!("privacy.{t}.action")));
        let action = if action.is_empty() {
            "keep".into()
        } else {
            action
        };
        v.insert(format!("privacy_{t}"), json!(action));
        v.insert(
            format!("privacy_{t}_digits"),
            json!(text(at(&format!("privacy.{t}.digits")))),
        );
    }
    let d = |k: &str| text(at(&format!("delivery.{k}")));
    for (field, key) in [
        ("delivery_mode", "mode"),
        ("interval_s", "interval_s"),
        ("delay_s", "delay_s"),
        ("timeout_ms", "timeout_ms"),
        ("ordered", "ordered"),
        ("max_in_flight", "max_in_flight"),
        ("max_per_second", "max_per_second"),
        ("disable_after_failures", "disable_after_failures"),
        ("retry_policy", "retry.policy"),
        ("egress", "egress"),
        ("retries", "retry.retries"),
    ] {
        v.insert(field.into(), json!(d(key)));
    }
    v
}

fn number(f: &Fields, name: &str, label: &str) -> Result<Option<Value>, String> {
    match f.text(name) {
        None => Ok(None),
        Some(t) => t
            .parse::<u64>()
            .map(|n| Some(json!(n)))
            .map_err(|_| format!("{label} must be a whole number (or empty for the default)")),
    }
}

fn json_field(f: &Fields, name: &str, label: &str) -> Result<Option<Value>, String> {
    match f.text(name) {
        None => Ok(None),
        Some(t) => serde_json::from_str(t)
            .map(Some)
            .map_err(|e| format!("{label} is not valid JSON: {e}")),
    }
}

fn id_list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The privacy rules the form's `privacy_*` fields describe.
pub fn privacy_from_fields(f: &Fields) -> Result<Map<String, Value>, String> {
    let mut privacy = Map::new();
    for t in PRIVACY_TARGETS {
        let t = t.as_str();
        let action = f.text(&format!("privacy_{t}")).unwrap_or("keep");
        if action == "keep" {
            continue;
        }
        let mut rule = Map::new();
        rule.insert("action".into(), json!(action));
        let label = format!("Last digits ({action}) for {t}");
        if let Some(d) = number(f, &format!("privacy_{t}_digits"), &label)? {
            rule.insert("digits".into(), d);
        }
        privacy.insert(t.into(), Value::Object(rule));
    }
    Ok(privacy)
}

/// The settings JSON (as the API takes it, without `secret`) that the form describes. The
/// error names the field and says how to fix it.
pub fn settings_from_fields(f: &Fields, partner: bool) -> Result<Map<String, Value>, String> {
    let mut s = Map::new();
    for key in [
        "name",
        "url",
        "method",
        "format",
        "profile",
        "verification",
        "secret_use",
    ] {
        if let Some(v) = f.text(key) {
            s.insert(key.into(), json!(v));
        }
    }
    s.insert("event_types".into(), json!(f.all("event_types")));
    // The template box stays filled when another profile is chosen; it is only sent with its
    // profile.
    if f.text("profile") == Some("template") {
        s.insert(
            "template".into(),
            json!(f.get("template").unwrap_or_default()),
        );
    }
    if partner {
        if let Some(feed) = f.text("feed") {
            s.insert("feed".into(), json!(feed));
        }
    }

    let mut headers = Map::new();
    for (n, line) in f.get("headers").unwrap_or_default().lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once(':').ok_or_else(|| {
            format!(
                "Headers, line {}: write each header as `Name: value`",
                n + 1
            )
        })?;
        headers.insert(k.trim().to_string(), json!(v.trim()));
    }
    s.insert("headers".into(), Value::Object(headers));

    // The client key is write-only: left empty, `…` keeps the one the integration has.
    if let Some(cert) = f
        .get("tls_client_certificate")
        .filter(|c| !c.trim().is_empty())
    {
        let key = f
            .get("tls_client_key")
            .filter(|k| !k.trim().is_empty())
            .unwrap_or("…");
        s.insert(
            "tls".into(),
            json!({"client_certificate": cert, "client_key": key}),
        );
    }

    if let Some(custom) = json_field(f, "custom_data", "Custom data")? {
        if !custom.is_object() {
            return Err("Custom data must be a JSON object, e.g. {\"crm\": \"acme\"}".into());
        }
        s.insert("custom_data".into(), custom);
    }

    let mut filters = Map::new();
    for group in ["users", "answer_groups"] {
        let mode = f.text(&format!("{group}_mode")).unwrap_or("all");
        let ids = id_list(f.get(&format!("{group}_ids")));
        let mut g = Map::new();
        g.insert("mode".into(), json!(mode));
        if !ids.is_empty() {
            g.insert("ids".into(), json!(ids));
        }
        filters.insert(group.into(), Value::Object(g));
    }
    let conditions = json_field(f, "conditions", "Conditions")?.unwrap_or(json!([]));
    if !conditions.is_array() {
        return Err(
            "Conditions must be a JSON list, e.g. [{\"field\": \"direction\", \"op\": \"eq\", \"value\": \"inbound\"}]"
                .into(),
        );
    }
    filters.insert("conditions".into(), conditions);
    s.insert("filters".into(), Value::Object(filters));

    let options: Map<String, Value> = OPTIONS
        .iter()
        .map(|o| (o.to_string(), json!(f.get(o).is_some())))
        .collect();
    s.insert("options".into(), Value::Object(options));

    s.insert("privacy".into(), Value::Object(privacy_from_fields(f)?));

    let mut delivery = Map::new();
    let mode = f.text("delivery_mode").unwrap_or("realtime");
    delivery.insert("mode".into(), json!(mode));
    // Empty: the node's default.
    if let Some(e) = f.text("egress") {
        delivery.insert("egress".into(), json!(e));
    }
    let mut retry = Map::new();
    // Empty: the profile's default.
    if let Some(p) = f.text("retry_policy") {
        retry.insert("policy".into(), json!(p));
    }
    if let Some(n) = number(f, "retries", "Retries")? {
        retry.insert("retries".into(), n);
    }
    delivery.insert("retry".into(), Value::Object(retry));
    for (field, label) in [
        ("timeout_ms", "Timeout"),
        ("max_in_flight", "Requests in flight"),
        ("disable_after_failures", "Disable after failures"),
        ("interval_s", "Batch interval"),
        ("delay_s", "Batch delay"),
    ] {
        // The window fields are hidden, not emptied, in real-time mode.
        if mode != "batch" && (field == "interval_s" || field == "delay_s") {
            continue;
        }
        if let Some(n) = number(f, field, label)? {
            delivery.insert(field.into(), n);
        }
    }
    if let Some(t) = f.text("max_per_second") {
        let rate = t
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite())
            .ok_or("Requests per second must be a number (or empty for no limit)")?;
        delivery.insert("max_per_second".into(), json!(rate));
    }
    match f.text("ordered") {
        Some("true") => {
            delivery.insert("ordered".into(), json!(true));
        }
        Some("false") => {
            delivery.insert("ordered".into(), json!(false));
        }
        _ => {}
    }
    s.insert("delivery".into(), Value::Object(delivery));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn form_fields_become_api_settings() {
        let f = fields(&[
            ("name", "CRM"),
            ("url", "https://crm.example.com/hook"),
            ("method", "POST"),
            ("event_types", "call.completed"),
            ("event_types", "call.unanswered"),
            ("headers", "X-Api-Key: abc\n\nX-Team:  support "),
            ("custom_data", "{\"crm\": \"acme\"}"),
            ("users_mode", "specific"),
            ("users_ids", "u1, u2 u3"),
            ("include_summary", "on"),
            ("privacy_remote_number", "mask"),
            ("privacy_remote_number_digits", "4"),
            ("privacy_local_email", "remove"),
            ("retry_policy", "exponential"),
            ("retries", "5"),
            ("ordered", "true"),
        ]);
        let s = Value::Object(settings_from_fields(&f, false).unwrap_or_default());
        assert_eq!(
            s["event_types"],
            json!(["call.completed", "call.unanswered"])
        );
        assert_eq!(
            s["headers"],
            json!({"X-Api-Key": "abc", "X-Team": "support"})
        );
        assert_eq!(s["custom_data"], json!({"crm": "acme"}));
        assert_eq!(
            s["filters"]["users"],
            json!({"mode": "specific", "ids": ["u1", "u2", "u3"]})
        );
        assert_eq!(s["filters"]["answer_groups"], json!({"mode": "all"}));
        assert_eq!(
            s["options"],
            json!({"include_transcript": false, "include_keywords": false, "include_summary": true})
        );
        assert_eq!(
            s["privacy"],
            json!({"local_email": {"action": "remove"}, "remote_number": {"action": "mask", "digits": 4}})
        );
        assert_eq!(
            s["delivery"]["retry"],
            json!({"policy": "exponential", "retries": 5})
        );
        assert_eq!(s["delivery"]["ordered"], json!(true));
        assert!(s.get("feed").is_none());
    }

    #[test]
    fn mistakes_name_the_field() {
        let bad_header = fields(&[("headers", "no colon here")]);
        let e = settings_from_fields(&bad_header, false)
            .err()
            .unwrap_or_default();
        assert!(e.contains("Headers, line 1"), "{e}");
        let bad_json = fields(&[("custom_data", "{oops")]);
        let e = settings_from_fields(&bad_json, false)
            .err()
            .unwrap_or_default();
        assert!(e.contains("Custom data is not valid JSON"), "{e}");
        let not_object = fields(&[("custom_data", "[1]")]);
        let e = settings_from_fields(&not_object, false)
            .err()
            .unwrap_or_default();
        assert!(e.contains("must be a JSON object"), "{e}");
        let bad_number = fields(&[("timeout_ms", "soon")]);
        let e = settings_from_fields(&bad_number, false)
            .err()
            .unwrap_or_default();
        assert!(e.contains("Timeout must be a whole number"), "{e}");
        let bad_rate = fields(&[("max_per_second", "fast")]);
        let e = settings_from_fields(&bad_rate, false)
            .err()
            .unwrap_or_default();
        assert!(e.contains("Requests per second must be a number"), "{e}");
    }

    /// Stored settings shown in the form and submitted unchanged give the same settings back,
    /// so saving an untouched edit form changes nothing.
    #[test]
    fn settings_survive_a_round_trip_through_the_form() {
        let stored = json!({
            "name": "Feed", "url": "https://x.example/h", "method": "PUT", "format": "form",
            "profile": "cdr", "verification": "none", "secret_use": "webex-signature",
            "event_types": ["call.completed"],
            "tls": {"client_certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "client_key": "…"},
            "headers": {"X-A": "1"}, "custom_data": {"k": [1, 2]},
            "filters": {"users": {"mode": "specific", "ids": ["a", "b"]},
                        "answer_groups": {"mode": "none"},
                        "conditions": [{"field": "direction", "op": "eq", "value": "inbound"}]},
            "options": {"include_transcript": true, "include_keywords": false, "include_summary": true},
            "privacy": {"remote_number": {"action": "mask", "digits": 3}},
            "delivery": {"mode": "realtime", "retry": {"policy": "linear", "retries": 1},
                         "timeout_ms": 10000, "ordered": false, "max_in_flight": 16,
                         "max_per_second": 2.5, "egress": "fixed"}
        });
        let values = values_from_settings(&stored);
        let pairs: Vec<(String, String)> = values
            .iter()
            .flat_map(|(k, v)| match v {
                Value::Array(a) => a
                    .iter()
                    .map(|x| (k.clone(), x.as_str().unwrap_or_default().to_string()))
                    .collect::<Vec<_>>(),
                Value::String(s) => vec![(k.clone(), s.clone())],
                _ => vec![],
            })
            .collect();
        let back = settings_from_fields(&Fields(pairs), false).unwrap_or_default();
        assert_eq!(Value::Object(back), stored);
    }
}
