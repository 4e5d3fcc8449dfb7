//! Integrations: where a tenant's (or partner's) call data goes, and how.
//!
//! [`IntegrationSpec`] is the settings object of the API (unknown fields are refused, so a typo
//! never silently does nothing). [`crate::model::settings::validate`] turns it into a [`ValidSpec`]; only a `ValidSpec`
//! is stored or cached.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::event::EventKind;
use crate::model::condition::Condition;
use crate::model::profile::Profile;
use crate::model::template::{Template, TemplateError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSpec {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    /// Where deliveries go: `https://…` (plain `http://` only where the node allows it); for a
    /// `nats` destination, the server: `tls://host:4222`; for `amqp`, the broker and virtual
    /// host: `amqps://host:5671/vhost` (plain `nats://` and `amqp://` only where plain http is
    /// allowed). A `stream` has none: it is read from the integration's `stream` endpoint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(
        pattern = "^(https?|tls|nats|amqps?)://[^\\s/?#]+([/?#]\\S*)?$",
        max_length = 2048
    )]
    pub url: String,
    /// `http` (the default): a request to `url`. `nats`: a message published to the JetStream
    /// server at `url`, counted as delivered when its stream acknowledges it. `amqp`: a message
    /// published to an exchange of the RabbitMQ broker at `url`, delivered when the broker
    /// confirms it and a queue took it. `stream`: no URL; the events are read live over
    /// WebSocket (or SSE) at the integration's `stream` endpoint.
    #[serde(default, skip_serializing_if = "Destination::is_http")]
    pub destination: Destination,
    #[serde(default)]
    pub method: HttpMethod,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub profile: Profile,
    pub event_types: Vec<EventKind>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Map<String, Value>>,
    #[serde(default)]
    pub verification: Verification,
    /// How the receiver's `secret` is used. Partner feeds default to Webex's way.
    #[serde(default)]
    pub secret_use: SecretUse,
    #[serde(default)]
    pub filters: Filters,
    #[serde(default)]
    pub options: Options,
    #[serde(default)]
    pub privacy: BTreeMap<PrivacyTarget, PrivacyRule>,
    #[serde(default)]
    pub delivery: DeliverySpec,
    /// Partner integrations only: which calls the partner's feed carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<Feed>,
    /// A client certificate for receivers that ask for one (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// With profile `template` only, and required with it: the payload as a JSON document whose
    /// strings may hold `{{ path | filter }}` placeholders (see the README). At most 16 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 16384)]
    pub template: Option<String>,
    /// `template`, compiled on first use.
    #[serde(skip)]
    #[schema(ignore)]
    compiled: super::Memo<Result<std::sync::Arc<Template>, TemplateError>>,
}

/// The address a `stream` integration is known by inside callhook: it has no URL, and every
/// other destination has one.
pub const STREAM_URL: &str = "callhook:stream";

impl IntegrationSpec {
    /// The parsed `url`; for a `stream`, [`STREAM_URL`].
    pub fn parsed_url(&self) -> Result<Url, url::ParseError> {
        if self.destination.is_stream() {
            return Url::parse(STREAM_URL);
        }
        Url::parse(&self.url)
    }

    /// The compiled `template`: `None` without one, else the template or what is wrong with it.
    pub fn compiled_template(&self) -> Option<Result<&Template, &TemplateError>> {
        let source = self.template.as_deref()?;
        Some(
            self.compiled
                .get_or_init(|| Template::compile(source).map(std::sync::Arc::new))
                .as_ref()
                .map(|t| t.as_ref()),
        )
    }
}

/// Where an integration's deliveries go. A broker gets the same payload, headers (as message
/// headers), ordering, retries and log as HTTP receivers; the integration's `secret` is the
/// broker password (with `user`) or token (without).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Destination {
    #[default]
    Http,
    /// NATS JetStream: published to `subject`; delivered when `stream` acknowledges it.
    Nats {
        #[schema(min_length = 1, max_length = 255)]
        subject: String,
        #[schema(min_length = 1, max_length = 255)]
        stream: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 255)]
        user: Option<String>,
    },
    /// AMQP 0-9-1 (RabbitMQ): published to `exchange` with `routing_key`, mandatory and with
    /// publisher confirms; delivered when the broker confirms it and a queue took it.
    /// A live stream read by the tenant's clients (agent desktops) at
    /// `/v1/tenants/{tid}/integrations/{iid}/stream`: nothing is queued, retried or logged.
    Stream,
    Amqp {
        /// The exchange; empty for the default exchange, where the routing key is a queue name.
        #[schema(max_length = 127)]
        exchange: String,
        #[schema(max_length = 255)]
        routing_key: String,
        /// The broker user; its password is the integration's `secret`.
        #[schema(min_length = 1, max_length = 255)]
        user: String,
    },
}

impl Destination {
    pub fn is_http(&self) -> bool {
        matches!(self, Destination::Http)
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Destination::Http => "http",
            Destination::Nats { .. } => "nats",
            Destination::Amqp { .. } => "amqp",
            Destination::Stream => "stream",
        }
    }
    pub fn is_stream(&self) -> bool {
        matches!(self, Destination::Stream)
    }
}

/// The client certificate an integration presents to its receiver.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// The certificate chain, PEM, the integration's own certificate first.
    pub client_certificate: String,
    /// Its private key, PEM: write-only (the API shows `…`), sealed at rest. Required when the
    /// certificate is first given; sending `…` back keeps the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

/// A partner feed (seed 003).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Feed {
    /// Every call of every tenant of the partner.
    Analytics,
    /// Calls made under a licence the partner sold (`license.partner_id`), whichever tenant.
    Billing,
}

impl Feed {
    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Analytics => "analytics",
            Feed::Billing => "billing",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
    Get,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    Form,
}

/// What callhook does with the receiver's secret.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SecretUse {
    /// Sent as `Authorization: Bearer <secret>` (seed 000).
    #[default]
    Bearer,
    /// Never sent: the body is signed with it, `X-Spark-Signature: <hex HMAC-SHA1>` (seed 003,
    /// as Webex does).
    WebexSignature,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// The endpoint must echo a challenge token before the settings are saved.
    #[default]
    Challenge,
    None,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default)]
    pub users: OwnerFilter,
    #[serde(default)]
    pub answer_groups: OwnerFilter,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerFilter {
    pub mode: OwnerMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// `ids` as a set: one lookup per event whatever their number.
    #[serde(skip)]
    #[schema(ignore)]
    set: super::Memo<std::collections::HashSet<String>>,
}

impl OwnerFilter {
    pub fn new(mode: OwnerMode, ids: Vec<String>) -> Self {
        Self {
            mode,
            ids,
            set: Default::default(),
        }
    }

    /// Whether `id` is one of `ids`.
    pub fn lists(&self, id: &str) -> bool {
        self.set
            .get_or_init(|| self.ids.iter().cloned().collect())
            .contains(id)
    }
}

impl Default for OwnerFilter {
    fn default() -> Self {
        Self::new(OwnerMode::All, Vec::new())
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OwnerMode {
    None,
    All,
    Specific,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default = "yes")]
    pub include_transcript: bool,
    #[serde(default = "yes")]
    pub include_keywords: bool,
    #[serde(default = "yes")]
    pub include_summary: bool,
}

fn yes() -> bool {
    true
}

impl Default for Options {
    fn default() -> Self {
        Self {
            include_transcript: true,
            include_keywords: true,
            include_summary: true,
        }
    }
}

#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PrivacyTarget {
    LocalUserId,
    LocalEmail,
    LocalNumber,
    RemoteUserId,
    RemoteEmail,
    RemoteNumber,
    DeviceType,
}

impl PrivacyTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            PrivacyTarget::LocalUserId => "local_user_id",
            PrivacyTarget::LocalEmail => "local_email",
            PrivacyTarget::LocalNumber => "local_number",
            PrivacyTarget::RemoteUserId => "remote_user_id",
            PrivacyTarget::RemoteEmail => "remote_email",
            PrivacyTarget::RemoteNumber => "remote_number",
            PrivacyTarget::DeviceType => "device_type",
        }
    }

    pub fn is_number(self) -> bool {
        matches!(
            self,
            PrivacyTarget::LocalNumber | PrivacyTarget::RemoteNumber
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyRule {
    pub action: PrivacyAction,
    /// 1–15, with `mask` or `truncate` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 15)]
    pub digits: Option<u8>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrivacyAction {
    Keep,
    Remove,
    /// Replace the last `digits` digits with `X` (seed 004's "mascherare").
    Mask,
    /// Drop the last `digits` digits (seed 004's "rimuovere le ultime X cifre").
    Truncate,
}

impl PrivacyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PrivacyAction::Keep => "keep",
            PrivacyAction::Remove => "remove",
            PrivacyAction::Mask => "mask",
            PrivacyAction::Truncate => "truncate",
        }
    }

    /// Whether the action takes `digits` (and so applies to numbers only).
    pub fn takes_digits(self) -> bool {
        matches!(self, PrivacyAction::Mask | PrivacyAction::Truncate)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverySpec {
    #[serde(default)]
    pub mode: DeliveryMode,
    #[serde(default)]
    pub retry: RetrySpec,
    #[serde(default = "default_timeout_ms")]
    #[schema(minimum = 1000, maximum = 30000)]
    pub timeout_ms: u64,
    /// One call's events reach this integration in order. Defaults to true when the
    /// integration receives `call.state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered: Option<bool>,
    /// Requests in flight to this endpoint at once.
    #[serde(default = "default_max_in_flight")]
    #[schema(minimum = 1, maximum = 256)]
    pub max_in_flight: u32,
    /// At most this many requests a second to this endpoint, for receivers whose APIs enforce a
    /// quota (a token bucket holding one second's worth, at least one request; with several
    /// nodes each sends an equal share). Deliveries beyond it wait, in order, in the store.
    /// Unset: no limit but `max_in_flight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.1, maximum = 10000)]
    pub max_per_second: Option<f64>,
    /// Disable after this many consecutive failed attempts. Unset: disable when a delivery
    /// exhausts the exponential schedule with no success in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub disable_after_failures: Option<u32>,
    /// Batch mode only: the window, 1–86400 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400)]
    pub interval_s: Option<u32>,
    /// Batch mode only: how long after a window's end it is sent, 0–86400 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 86400)]
    pub delay_s: Option<u32>,
    /// Which addresses the requests come from (seed 001's "Source IP address" box). Unset: the
    /// node's default (`CALLHOOK_EGRESS_DEFAULT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Egress>,
}

/// Where an integration's requests leave from.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Egress {
    /// The node's own addresses.
    #[default]
    Direct,
    /// Through the node's egress proxy (`CALLHOOK_EGRESS_PROXY`), whose addresses the
    /// receiver can allow-list.
    Fixed,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_in_flight() -> u32 {
    16
}

impl Default for DeliverySpec {
    fn default() -> Self {
        Self {
            mode: DeliveryMode::Realtime,
            retry: RetrySpec::default(),
            timeout_ms: default_timeout_ms(),
            ordered: None,
            max_in_flight: default_max_in_flight(),
            max_per_second: None,
            disable_after_failures: None,
            interval_s: None,
            delay_s: None,
            egress: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    #[default]
    Realtime,
    Batch,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Unset: the profile's default, made explicit when the settings are saved (seed 000's
    /// exponential back-off for `recording.*`, seed 002's linear waits for everything else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RetryPolicyKind>,
    /// Retries after the first attempt: 0–10 (default 1 for linear, 10 for exponential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 10)]
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryPolicyKind {
    /// The n-th retry waits n × 2 s.
    #[default]
    Linear,
    /// About 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h, with jitter.
    Exponential,
}

impl RetryPolicyKind {
    /// The schedule an integration of `profile` gets when its settings name none: seed 000
    /// backs off exponentially before disabling a recording integration; seed 002 (and the
    /// rest) retry linearly, once by default.
    pub fn default_for(profile: Profile) -> RetryPolicyKind {
        match profile {
            Profile::RecordingV1 | Profile::RecordingV2 => RetryPolicyKind::Exponential,
            _ => RetryPolicyKind::Linear,
        }
    }
}

/// A spec that passed every check, with its defaults made explicit.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec {
    pub spec: IntegrationSpec,
    pub url: Url,
}

impl ValidSpec {
    pub fn ordered(&self) -> bool {
        self.spec.delivery.ordered.unwrap_or(false)
    }
    /// For a batch integration whose profile sends one record per request: when a delivery
    /// created at `now` goes out — the boundary that closes the window `now` falls in
    /// (windows are `[T − delay − interval, T − delay)`, sent at T). `None`: at once.
    pub fn held_until(&self, now: i64) -> Option<i64> {
        let d = &self.spec.delivery;
        if d.mode != DeliveryMode::Batch || self.spec.profile.collects() {
            return None;
        }
        let interval = d.interval_s.unwrap_or(300).max(1) as i64 * 1000;
        let delay = d.delay_s.unwrap_or(0) as i64 * 1000;
        Some(((now + delay).div_euclid(interval) + 1) * interval)
    }

    /// For an integration that holds deliveries (see [`Self::held_until`]): the first boundary
    /// after `now`, when the next held delivery can fall due.
    pub fn next_boundary(&self, now: i64) -> Option<i64> {
        self.held_until(now)?;
        let interval = self.spec.delivery.interval_s.unwrap_or(300).max(1) as i64 * 1000;
        Some((now.div_euclid(interval) + 1) * interval)
    }

    pub fn retry_policy(&self) -> RetryPolicyKind {
        self.spec.delivery.retry.policy.unwrap_or_default()
    }
    pub fn retries(&self) -> u32 {
        self.spec.delivery.retry.retries.unwrap_or(0)
    }
}
