//! Where an integration's deliveries go: the URL for its destination's schemes, and a broker's
//! subject and stream; settings that mean nothing to a broker are refused, not ignored.

use super::{invalid, SettingError};
use crate::model::integration::{Destination, Egress, HttpMethod, IntegrationSpec, SecretUse};
use crate::security::ssrf::{check_url_form, check_url_schemes, DestinationPolicy, Refused};

/// A stream is read by the tenant's own clients: settings about sending somewhere, waiting or
/// retrying mean nothing to it.
fn check_stream(spec: &IntegrationSpec) -> Result<(), SettingError> {
    let refuse = |what: &str| {
        Err(invalid(format!(
            "`{what}`: a stream integration is read live at its `stream` endpoint; it sends nothing, so leave `{what}` out"
        )))
    };
    if !spec.url.is_empty() {
        return refuse("url");
    }
    if !spec.headers.is_empty() {
        return refuse("headers");
    }
    if spec.custom_data.is_some() {
        return refuse("custom_data");
    }
    if spec.tls.is_some() {
        return refuse("tls");
    }
    if spec.method != HttpMethod::Post {
        return refuse("method");
    }
    if spec.secret_use != SecretUse::Bearer {
        return refuse("secret_use");
    }
    if spec.feed.is_some() {
        return refuse("feed");
    }
    if spec.format != crate::model::integration::Format::Json {
        return Err(invalid(
            "`format`: a stream's messages are JSON; leave `format` out",
        ));
    }
    if spec.delivery.mode != crate::model::integration::DeliveryMode::Realtime {
        return refuse("delivery.mode");
    }
    Ok(())
}

/// The URL, checked for the destination's schemes; a broker's subject and stream; and the
/// settings that mean nothing to a broker refused.
pub(super) fn check_destination(
    spec: &IntegrationSpec,
    policy: DestinationPolicy,
) -> Result<url::Url, SettingError> {
    let bad_url = |e: Refused| SettingError {
        code: "invalid_url",
        message: e.0,
    };
    let (schemes, user) = match &spec.destination {
        Destination::Http => return check_url_form(&spec.url, policy).map_err(bad_url),
        Destination::Stream => {
            check_stream(spec)?;
            return spec
                .parsed_url()
                .map_err(|e| invalid(format!("stream: {e}")));
        }
        Destination::Nats {
            subject,
            stream,
            user,
        } => {
            // A subject is dot-separated tokens; wildcards subscribe, they do not publish.
            let subject_ok = !subject.is_empty()
                && subject.len() <= 255
                && subject.split('.').all(|t| {
                    !t.is_empty()
                        && t != "*"
                        && t != ">"
                        && !t.chars().any(|c| c.is_whitespace() || c.is_control())
                });
            // `$JS.API.…`, `$SYS.…` and `_INBOX.…` are the server's own: a publish there is a
            // request to it (delete a stream, purge it), not a message.
            let first = subject.split('.').next().unwrap_or_default();
            if first.starts_with('$') || first == "_INBOX" {
                return Err(invalid(
                    "`destination.subject`: subjects starting with `$` or `_INBOX` are the NATS server's own (its API and replies); publish to a subject of your own",
                ));
            }
            if !subject_ok {
                return Err(invalid(
                    "`destination.subject`: a NATS subject to publish to, such as calls.acme (dot-separated tokens, no spaces or wildcards, at most 255 bytes)",
                ));
            }
            let stream_ok = !stream.is_empty()
                && stream.len() <= 255
                && stream
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !stream_ok {
                return Err(invalid(
                    "`destination.stream`: the JetStream stream that takes the subject (letters, digits, `_` and `-`, at most 255)",
                ));
            }
            (("tls", "nats"), user.as_deref())
        }
        Destination::Amqp {
            exchange,
            routing_key,
            user,
        } => {
            // AMQP short strings.
            let exchange_ok = exchange.len() <= 127
                && exchange
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
            if !exchange_ok {
                return Err(invalid(
                    "`destination.exchange`: the exchange to publish to (letters, digits, `_`, `-`, `.` and `:`, at most 127), or empty for the default exchange",
                ));
            }
            if routing_key.len() > 255 || routing_key.chars().any(char::is_control) {
                return Err(invalid(
                    "`destination.routing_key`: at most 255 bytes, no control characters",
                ));
            }
            // Header names are AMQP short strings (at most 255 bytes).
            if let Some(name) = spec.headers.keys().find(|k| k.len() > 255) {
                return Err(invalid(format!(
                    "`headers`: `{}…` is longer than the 255 bytes an AMQP header name may have",
                    name.chars().take(32).collect::<String>()
                )));
            }
            if exchange.is_empty() && routing_key.is_empty() {
                return Err(invalid(
                    "`destination.routing_key`: with the default exchange (an empty `exchange`) the routing key is the queue's name",
                ));
            }
            (("amqps", "amqp"), Some(user.as_str()))
        }
    };
    if user.is_some_and(|u| u.is_empty() || u.len() > 255 || u.chars().any(char::is_control)) {
        return Err(invalid(
            "`destination.user`: the broker user, 1–255 characters (its password is the integration's `secret`)",
        ));
    }
    let what = spec.destination.as_str();
    // `Nats-*` headers steer how JetStream stores a message (its dedupe id, roll-ups,
    // expectations); callhook sets the ones it needs.
    if let Some(name) = spec.headers.keys().find(|k| {
        matches!(spec.destination, Destination::Nats { .. })
            && k.to_ascii_lowercase().starts_with("nats-")
    }) {
        return Err(invalid(format!(
            "`headers`: `{name}` is a NATS header that changes how the stream stores messages; callhook sets `Nats-Msg-Id` itself"
        )));
    }
    // RabbitMQ routes a message to the extra routing keys in its `CC` and `BCC` headers, and
    // reads `x-…` ones itself: a tenant's headers must not reach queues its key does not.
    if let Some(name) = spec.headers.keys().find(|k| {
        let k = k.to_ascii_lowercase();
        matches!(spec.destination, Destination::Amqp { .. })
            && (k == "cc" || k == "bcc" || k.starts_with("x-"))
    }) {
        return Err(invalid(format!(
            "`headers`: `{name}` is read by the AMQP broker (`CC` and `BCC` route the message to more queues, `x-…` steer it); leave it out"
        )));
    }
    if spec.method != HttpMethod::Post {
        return Err(invalid(format!(
            "`method`: a {what} destination publishes messages; leave `method` out"
        )));
    }
    if spec.secret_use != SecretUse::Bearer {
        return Err(invalid(format!(
            "`secret_use`: with a {what} destination the secret is the broker's password or token"
        )));
    }
    if spec.tls.is_some() {
        return Err(invalid(format!(
            "`tls`: client certificates are for http destinations; a {what} broker takes `destination.user` and the `secret`"
        )));
    }
    if spec.delivery.egress == Some(Egress::Fixed) {
        return Err(invalid(format!(
            "`delivery.egress`: fixed egress goes through an HTTP proxy; a {what} destination connects directly"
        )));
    }
    // Which brokers may be used is the operator's list (CALLHOOK_NATS_SERVERS and
    // CALLHOOK_AMQP_SERVERS, checked where the node's configuration is known), not the address
    // ranges of HTTP receivers.
    let listed = DestinationPolicy {
        allow_private: true,
        ..policy
    };
    let url = check_url_schemes(&spec.url, listed, schemes).map_err(bad_url)?;
    if matches!(spec.destination, Destination::Amqp { .. }) {
        amqp_vhost(&url).map_err(|message| SettingError {
            code: "invalid_url",
            message,
        })?;
    }
    Ok(url)
}

/// The AMQP virtual host a broker URL names: its one path segment, percent-decoded (`%2f` is
/// `/`); none is `/`, the broker's default. A query, a fragment, a second segment or a name
/// that is not UTF-8 or longer than 255 bytes is refused rather than ignored or changed.
pub fn amqp_vhost(url: &url::Url) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "`url`: {why}; an AMQP URL is `amqps://host:port/vhost` (no path for the default virtual host `/`, `%2f` names it too)"
        ))
    };
    if url.query().is_some() || url.fragment().is_some() {
        return bad("a query or fragment is not used");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad(
            "the user is `destination.user` and the password the `secret`, not part of the URL",
        );
    }
    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    if path.contains('/') {
        return bad("the path is one virtual host");
    }
    let Ok(decoded) = percent_encoding::percent_decode_str(path).decode_utf8() else {
        return bad("the virtual host is not UTF-8");
    };
    if decoded.len() > 255 || decoded.chars().any(char::is_control) {
        return bad("the virtual host has at most 255 bytes and no control characters");
    }
    Ok(if decoded.is_empty() {
        "/".to_string()
    } else {
        decoded.into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::amqp_vhost;

    #[test]
    fn the_vhost_is_the_decoded_path_and_anything_else_in_the_url_is_refused() {
        for (url, want) in [
            ("amqps://mq.example.com", Some("/")),
            ("amqps://mq.example.com/", Some("/")),
            ("amqps://mq.example.com/%2f", Some("/")),
            ("amqps://mq.example.com/acme", Some("acme")),
            ("amqps://mq.example.com/acme%2Fcalls", Some("acme/calls")),
            ("amqps://mq.example.com/a/b", None),
            ("amqps://mq.example.com/acme?heartbeat=0", None),
            ("amqps://mq.example.com/acme#x", None),
            ("amqps://u:p@mq.example.com/acme", None),
            ("amqps://mq.example.com/%ff", None),
        ] {
            let parsed = url::Url::parse(url).expect("url");
            assert_eq!(amqp_vhost(&parsed).ok().as_deref(), want, "{url}");
        }
        let long = format!("amqps://mq.example.com/{}", "v".repeat(256));
        assert!(amqp_vhost(&url::Url::parse(&long).expect("url")).is_err());
    }
}
