//! Checking an integration's settings: a raw [`IntegrationSpec`] becomes a [`ValidSpec`] or a
//! [`SettingError`] saying what to fix. Limits are enforced here, before any work is spent on
//! a setting; write-only values (secrets, header values) are shown back only as hints.

use serde_json::Value;

use crate::model::event::EventKind;
use crate::model::integration::*;
use crate::model::profile::Profile;
use crate::model::write_only::check_headers;
pub use crate::model::write_only::{header_hint, secret_hint};

mod destination;
use crate::security::ssrf::DestinationPolicy;
pub use destination::amqp_vhost;
use destination::check_destination;

/// A setting that cannot be saved: 422 with this code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingError {
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> SettingError {
    SettingError {
        code: "invalid_setting",
        message: message.into(),
    }
}

/// Conditions per integration: each is evaluated for every event of the tenant.
pub const MAX_CONDITIONS: usize = 32;

/// Ids in a users / answer-groups filter, and the longest id.
pub const MAX_OWNER_IDS: usize = 1000;

const MAX_ID_BYTES: usize = 256;

const MAX_CUSTOM_DATA_BYTES: usize = 16 * 1024;

/// Bounds of `delivery.max_per_second`.
pub const MIN_PER_SECOND: f64 = 0.1;
pub const MAX_PER_SECOND: f64 = 10_000.0;

/// A client certificate chain or key.
const MAX_PEM_BYTES: usize = 64 * 1024;

/// Settings that are objects must be given as objects: serde would read a struct from an array
/// (`"options": []` meaning "all defaults"), silently ignoring what the caller meant.
pub fn check_shape(settings: &Value) -> Result<(), SettingError> {
    const OBJECTS: [&str; 11] = [
        "/tls",
        "/headers",
        "/custom_data",
        "/filters",
        "/filters/users",
        "/filters/answer_groups",
        "/options",
        "/privacy",
        "/delivery",
        "/delivery/retry",
        "",
    ];
    // The optional ones may be `null`, as their schema says: the same as leaving them out.
    const NULLABLE: [&str; 2] = ["/tls", "/custom_data"];
    for path in OBJECTS {
        if let Some(v) = settings.pointer(path) {
            let allowed = v.is_object() || (v.is_null() && NULLABLE.contains(&path));
            if !allowed {
                let name = path.trim_start_matches('/').replace('/', ".");
                return Err(invalid(format!(
                    "`{}` must be an object",
                    if name.is_empty() {
                        "the settings"
                    } else {
                        &name
                    }
                )));
            }
        }
    }
    let conditions = settings
        .pointer("/filters/conditions")
        .and_then(Value::as_array);
    if conditions.into_iter().flatten().any(|c| !c.is_object()) {
        return Err(invalid(
            "`filters.conditions` must be a list of {field, op, value} objects",
        ));
    }
    if let Some(Value::Object(rules)) = settings.get("privacy") {
        if rules.values().any(|r| !r.is_object()) {
            return Err(invalid(
                "each `privacy` rule must be an object such as {\"action\": \"remove\"}",
            ));
        }
    }
    Ok(())
}

/// Checks every setting and fills in defaults. `has_secret` decides whether an
/// `Authorization` header may be set (it may not when callhook sends the secret as bearer).
pub fn validate(
    mut spec: IntegrationSpec,
    has_secret: bool,
    policy: DestinationPolicy,
) -> Result<ValidSpec, SettingError> {
    spec.name = super::tenancy::check_label("name", &spec.name).map_err(invalid)?;
    let url = check_destination(&spec, policy)?;
    // The parsed form is what is stored and shown: what is sent to is what the API says.
    if !spec.destination.is_stream() {
        spec.url = url.to_string();
    }
    if spec.event_types.iter().any(|k| !k.is_subscribable()) {
        return Err(invalid(
            "`event_types`: `cdr.batch` is made by callhook; subscribe to call.completed",
        ));
    }
    if spec.event_types.is_empty() {
        return Err(invalid(
            "`event_types` must name at least one of call.state, call.completed, call.unanswered, recording.completed, analysis.completed, ivr.input",
        ));
    }
    spec.event_types.sort();
    spec.event_types.dedup();
    spec.profile
        .check_feeds(&spec.event_types)
        .map_err(invalid)?;
    check_template(&spec)?;
    // The secret takes `Authorization` only when it is sent as a bearer token.
    check_headers(
        &spec.headers,
        has_secret && spec.secret_use == SecretUse::Bearer,
    )
    .map_err(invalid)?;
    if let Some(cd) = &spec.custom_data {
        let size = serde_json::to_vec(cd)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_CUSTOM_DATA_BYTES {
            return Err(invalid(format!(
                "`custom_data` is {size} bytes; at most {MAX_CUSTOM_DATA_BYTES} are allowed"
            )));
        }
    }
    for (field, f) in [
        ("users", &spec.filters.users),
        ("answer_groups", &spec.filters.answer_groups),
    ] {
        if f.ids.len() > MAX_OWNER_IDS
            || f.ids
                .iter()
                .any(|id| id.is_empty() || id.len() > MAX_ID_BYTES)
        {
            return Err(invalid(format!(
                "`filters.{field}.ids`: at most {MAX_OWNER_IDS} ids of 1–{MAX_ID_BYTES} bytes each"
            )));
        }
        match f.mode {
            OwnerMode::Specific if f.ids.is_empty() => {
                return Err(invalid(format!(
                    "`filters.{field}.mode` is specific but `ids` is empty; list the ids or use mode all"
                )))
            }
            OwnerMode::None | OwnerMode::All if !f.ids.is_empty() => {
                return Err(invalid(format!(
                    "`filters.{field}.ids` is only used with mode specific"
                )))
            }
            _ => {}
        }
    }
    if spec.filters.conditions.len() > MAX_CONDITIONS {
        return Err(invalid(format!(
            "`filters.conditions`: at most {MAX_CONDITIONS} conditions (each is evaluated for every event)"
        )));
    }
    for (i, c) in spec.filters.conditions.iter().enumerate() {
        c.check()
            .map_err(|m| invalid(format!("`filters.conditions[{i}]`: {m}")))?;
    }
    for (target, rule) in &spec.privacy {
        let (action, name) = (rule.action, target.as_str());
        match rule.digits {
            _ if action.takes_digits() && !target.is_number() => {
                return Err(invalid(format!(
                    "`privacy.{name}`: only numbers can be {}ed; use remove",
                    if action == PrivacyAction::Mask {
                        "mask"
                    } else {
                        "truncat"
                    }
                )))
            }
            Some(1..=15) if action.takes_digits() => {}
            _ if action.takes_digits() => {
                return Err(invalid(format!(
                    "`privacy.{name}`: {} needs `digits` from 1 to 15",
                    action.as_str()
                )))
            }
            Some(_) => {
                return Err(invalid(format!(
                    "`privacy.{name}`: `digits` is only used with action mask or truncate"
                )))
            }
            None => {}
        }
    }
    if let Some(tls) = &spec.tls {
        if tls.client_certificate.trim().is_empty() || tls.client_certificate.len() > MAX_PEM_BYTES
        {
            return Err(invalid(format!(
                "`tls.client_certificate`: a PEM certificate chain of at most {MAX_PEM_BYTES} bytes"
            )));
        }
        match &tls.client_key {
            Some(k) if !k.trim().is_empty() && k.len() <= MAX_PEM_BYTES => {}
            _ => {
                return Err(invalid(format!(
                    "`tls.client_key`: the certificate's private key, PEM, at most {MAX_PEM_BYTES} bytes"
                )))
            }
        }
    }
    let batch_only = spec.profile == Profile::CdrBatch;
    let d = &mut spec.delivery;
    match d.mode {
        DeliveryMode::Realtime if batch_only => {
            return Err(invalid(
                "profile `cdr-batch` is sent in windows: set `delivery.mode` to batch",
            ))
        }
        DeliveryMode::Realtime if d.interval_s.is_some() || d.delay_s.is_some() => {
            return Err(invalid(
                "`delivery.interval_s` and `delay_s` are for mode batch",
            ))
        }
        DeliveryMode::Batch => {
            let interval = d.interval_s.unwrap_or(300);
            let delay = d.delay_s.unwrap_or(0);
            if !(1..=86_400).contains(&interval) || delay > 86_400 {
                return Err(invalid(
                    "`delivery.interval_s` must be 1–86400 and `delay_s` 0–86400 seconds",
                ));
            }
            d.interval_s = Some(interval);
            d.delay_s = Some(delay);
        }
        DeliveryMode::Realtime => {}
    }
    let max_retries = 10;
    let policy = *d
        .retry
        .policy
        .get_or_insert(RetryPolicyKind::default_for(spec.profile));
    let retries = d.retry.retries.unwrap_or(match policy {
        RetryPolicyKind::Linear => 1,
        RetryPolicyKind::Exponential => 10,
    });
    if retries > max_retries {
        return Err(invalid("`delivery.retry.retries` must be 0–10"));
    }
    d.retry.retries = Some(retries);
    if !(1_000..=30_000).contains(&d.timeout_ms) {
        return Err(invalid("`delivery.timeout_ms` must be 1000–30000"));
    }
    if !(1..=256).contains(&d.max_in_flight) {
        return Err(invalid("`delivery.max_in_flight` must be 1–256"));
    }
    if let Some(rate) = d.max_per_second {
        if !(MIN_PER_SECOND..=MAX_PER_SECOND).contains(&rate) {
            return Err(invalid(
                "`delivery.max_per_second` must be 0.1–10000 requests a second (leave it out for no limit)",
            ));
        }
    }
    if d.disable_after_failures == Some(0) {
        return Err(invalid(
            "`delivery.disable_after_failures` must be at least 1 (leave it out for the default)",
        ));
    }
    if d.ordered.is_none() {
        d.ordered = Some(spec.event_types.contains(&EventKind::CallState));
    }
    Ok(ValidSpec { spec, url })
}

/// Profile `template` needs a template that compiles, sent as a JSON body; other profiles take
/// none. (That it renders every subscribed type's example is checked above, in `render`.)
fn check_template(spec: &IntegrationSpec) -> Result<(), SettingError> {
    let wrong = |message: String| SettingError {
        code: "invalid_template",
        message,
    };
    match (spec.profile, spec.compiled_template()) {
        (Profile::Template, None) => Err(wrong(
            "profile `template` needs `template`: a JSON document whose strings may hold `{{ path | filter }}` placeholders"
                .into(),
        )),
        (Profile::Template, Some(Err(e))) => Err(wrong(format!("`template` {e}"))),
        (Profile::Template, Some(Ok(_)))
            if spec.format != Format::Json || spec.method == HttpMethod::Get =>
        {
            Err(invalid(
                "profile `template` sends its JSON as the body: use format json and method POST or PUT",
            ))
        }
        (Profile::Template, Some(Ok(_))) | (_, None) => Ok(()),
        (other, Some(_)) => Err(invalid(format!(
            "`template` is used with profile `template` only (this integration's profile is `{}`)",
            other.as_str()
        ))),
    }
}

/// A receiver secret must be usable as a bearer token.
pub fn check_secret(secret: &str) -> Result<(), SettingError> {
    crate::model::write_only::check_secret(secret).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> IntegrationSpec {
        match serde_json::from_value(v) {
            Ok(s) => s,
            Err(e) => panic!("spec: {e}"),
        }
    }

    fn base() -> Value {
        json!({"name": "CRM", "url": "https://crm.example.com/h", "event_types": ["call.state", "call.completed"]})
    }

    #[test]
    fn defaults_are_made_explicit() {
        let v = validate(spec(base()), false, DestinationPolicy::default());
        let v = v.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(v.spec.delivery.retry.retries, Some(1));
        assert_eq!(
            v.spec.delivery.ordered,
            Some(true),
            "call.state defaults to ordered"
        );
        assert_eq!(v.spec.delivery.timeout_ms, 10_000);
    }

    #[test]
    fn recording_integrations_back_off_exponentially_by_default_and_cdr_retries_linearly_once() {
        for (profile, kinds, policy, retries) in [
            (
                "recording.v2",
                json!(["recording.completed"]),
                RetryPolicyKind::Exponential,
                10,
            ),
            (
                "recording.v1",
                json!(["recording.completed"]),
                RetryPolicyKind::Exponential,
                10,
            ),
            ("cdr", json!(["call.completed"]), RetryPolicyKind::Linear, 1),
            (
                "canonical",
                json!(["call.completed"]),
                RetryPolicyKind::Linear,
                1,
            ),
        ] {
            let mut b = base();
            b["profile"] = json!(profile);
            b["event_types"] = kinds;
            let v = validate(spec(b.clone()), false, DestinationPolicy::default())
                .unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(v.spec.delivery.retry.policy, Some(policy), "{profile}");
            assert_eq!(v.spec.delivery.retry.retries, Some(retries), "{profile}");
            // A policy named in the settings wins.
            b["delivery"] = json!({"retry": {"policy": "linear"}});
            let v = validate(spec(b), false, DestinationPolicy::default())
                .unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(v.retry_policy(), RetryPolicyKind::Linear, "{profile}");
        }
    }

    #[test]
    fn truncation_needs_digits_and_a_number() {
        for (privacy, ok) in [
            (
                json!({"remote_number": {"action": "truncate", "digits": 4}}),
                true,
            ),
            (
                json!({"local_number": {"action": "truncate", "digits": 15}}),
                true,
            ),
            (json!({"remote_number": {"action": "truncate"}}), false),
            (
                json!({"remote_number": {"action": "truncate", "digits": 16}}),
                false,
            ),
            (
                json!({"remote_number": {"action": "truncate", "digits": 0}}),
                false,
            ),
            (
                json!({"local_email": {"action": "truncate", "digits": 2}}),
                false,
            ),
            (
                json!({"remote_number": {"action": "remove", "digits": 2}}),
                false,
            ),
        ] {
            let mut b = base();
            b["privacy"] = privacy.clone();
            let got = validate(spec(b), false, DestinationPolicy::default());
            assert_eq!(got.is_ok(), ok, "{privacy}: {:?}", got.err());
        }
    }

    #[test]
    fn reserved_and_malformed_headers_are_refused() {
        for (headers, has_secret) in [
            (json!({"User-Agent": "x"}), false),
            (json!({"content-type": "x"}), false),
            (json!({"Webhook-Id": "x"}), false),
            (json!({"callhook-attempt": "1"}), false),
            (json!({"Authorization": "Bearer x"}), true),
            (json!({"X-Ok": "a\r\nInjected: 1"}), false),
            (json!({"Bad Name": "x"}), false),
        ] {
            let mut b = base();
            b["headers"] = headers.clone();
            assert!(
                validate(spec(b), has_secret, DestinationPolicy::default()).is_err(),
                "{headers}"
            );
        }
        let mut b = base();
        b["headers"] = json!({"Authorization": "Basic abc", "X-Api-Key": "k"});
        assert!(validate(spec(b), false, DestinationPolicy::default()).is_ok());
    }

    #[test]
    fn out_of_range_delivery_settings_are_refused() {
        for delivery in [
            json!({"retry": {"policy": "linear", "retries": 11}}),
            json!({"timeout_ms": 10}),
            json!({"max_in_flight": 0}),
            json!({"disable_after_failures": 0}),
            json!({"max_per_second": 0}),
            json!({"max_per_second": 0.01}),
            json!({"max_per_second": -5}),
            json!({"max_per_second": 10001}),
        ] {
            let mut b = base();
            b["delivery"] = delivery.clone();
            assert!(
                validate(spec(b), false, DestinationPolicy::default()).is_err(),
                "{delivery}"
            );
        }
    }

    #[test]
    fn hints_show_only_the_last_four_characters() {
        assert_eq!(secret_hint("123ExampleCustomer321"), "…r321");
    }
}
