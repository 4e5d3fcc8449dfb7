use serde_json::{json, Map, Value};

use super::*;

fn event() -> Map<String, Value> {
    json!({
        "delivery_id": "dlv_1",
        "id": "cdr-1",
        "type": "call.completed",
        "tenant_id": "acme",
        "occurred_at": "2026-05-29T08:37:46.000Z",
        "call_id": "c-42",
        "data": {
            "direction": "inbound",
            "started_at": "2026-05-29T09:37:35+01:00",
            "talk_ms": 90500,
            "caller": {"number": "+44700000000", "name": "Ann \"Q\" O'Neil\n"},
            "tags": ["vip", "uk"],
            "legs": [{"number": "302"}, {"number": "303"}]
        }
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

fn render(source: &str) -> Result<Value, TemplateError> {
    let t = Template::compile(source)?;
    let bytes = t.render(&event())?;
    Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON: {e}")))
}

fn compile_error(source: &str) -> TemplateError {
    match Template::compile(source) {
        Ok(_) => panic!("compiled: {source}"),
        Err(e) => e,
    }
}

#[test]
fn a_whole_placeholder_keeps_the_values_type_and_text_placeholders_make_text() {
    let out = render(
        r#"{"properties": {
            "hs_call_direction": "{{ data.direction | upper }}",
            "hs_call_duration": "{{ data.talk_ms }}",
            "hs_timestamp": "{{ occurred_at | epoch_ms }}",
            "hs_call_title": "Call from {{ data.caller.number }} ({{ data.talk_ms | div(1000) | round }} s)",
            "legs": "{{ data.legs }}",
            "second": "{{ data.legs.1.number }}",
            "tags": "{{ data.tags | join(', ') }}",
            "fixed": [1, true, null, "x"]
        }}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out,
        json!({"properties": {
            "hs_call_direction": "INBOUND",
            "hs_call_duration": 90500,
            "hs_timestamp": 1_780_043_866_000_i64,
            "hs_call_title": "Call from +44700000000 (91 s)",
            "legs": [{"number": "302"}, {"number": "303"}],
            "second": "303",
            "tags": "vip, uk",
            "fixed": [1, true, null, "x"]
        }})
    );
}

#[test]
fn a_missing_value_is_null_unless_a_default_is_given() {
    let out = render(
        r#"{"a": "{{ data.nothing.here }}", "b": "{{ data.nothing | default('n/a') }}",
            "c": "x{{ data.nothing }}y", "d": "{{ data.nothing | upper }}",
            "e": "{{ data.direction | map('inbound', 'Inbound', 'outbound', 'Outbound', 'Other') }}",
            "f": "{{ data.nothing | map('inbound', 'Inbound', 'Other') }}",
            "g": "{{ data.started_at | date }}", "h": "{{ data.caller.name | truncate(3) }}",
            "i": "{{ data.legs.0 | json }}", "j": "{{ '{{' }} literal {{ 'and }}' }}",
            "k": "{{ data.talk_ms | string }}", "l": "{{ '12.5' | number }}"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out,
        json!({"a": null, "b": "n/a", "c": "xy", "d": null, "e": "Inbound", "f": "Other",
               "g": "2026-05-29", "h": "Ann", "i": "{\"number\":\"302\"}",
               "j": "{{ literal and }}", "k": "90500", "l": 12.5})
    );
}

#[test]
fn values_with_quotes_and_line_breaks_stay_valid_json() {
    let out = render(r#"["{{ data.caller.name }}", "name: {{ data.caller.name }}!"]"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out,
        json!(["Ann \"Q\" O'Neil\n", "name: Ann \"Q\" O'Neil\n!"])
    );
}

#[test]
fn mistakes_are_reported_at_their_line_and_column() {
    let cases = [
        (
            "{\n  \"a\": \"{{ data.x | shout }}\"\n}",
            2,
            21,
            "no filter `shout`",
        ),
        ("{\n  \"a\": \"{{ data.x\"\n}", 2, 9, "never closed"),
        ("{\"a\": 1,}", 1, 9, "key in double quotes"),
        ("{\"a\": 1, \"a\": 2}", 1, 11, "appears twice"),
        ("{\"{{ id }}\": 1}", 1, 3, "keys are literal"),
        ("{\"a\": nope}", 1, 7, "expected a JSON value"),
        ("{\"a\": 1} x", 1, 10, "text after the end"),
        ("", 1, 1, "empty"),
        (
            "[\"{{ x | truncate('a') }}\"]",
            1,
            10,
            "number of characters",
        ),
        ("[\"{{ x | div(0) }}\"]", 1, 10, "other than 0"),
        ("[\"{{ x y }}\"]", 1, 8, "expected `|`"),
        ("[\"a }} b\"]", 1, 5, "without an opening"),
        ("[\"line\nbreak\"]", 1, 7, "control character"),
        ("[\"é{{ x | nope }}\"]", 1, 11, "no filter `nope`"),
        // An escape before the mistake: reported at the string's start.
        ("[\"\\u00e9{{ x | nope }}\"]", 1, 2, "no filter `nope`"),
    ];
    for (source, line, column, says) in cases {
        let e = compile_error(source);
        assert_eq!((e.line, e.column), (line, column), "{source:?}: {e}");
        assert!(e.message.contains(says), "{source:?}: {e}");
    }
}

#[test]
fn a_filter_given_the_wrong_kind_of_value_fails_the_render_where_it_is_written() {
    let t = Template::compile("{\n \"a\": \"{{ data.talk_ms | upper }}\"}")
        .unwrap_or_else(|e| panic!("{e}"));
    let e = match t.render(&event()) {
        Ok(_) => panic!("rendered"),
        Err(e) => e,
    };
    assert_eq!((e.line, e.column), (2, 26), "{e}");
    assert!(
        e.message
            .contains("`upper` takes text; this value is a number"),
        "{e}"
    );
}

#[test]
fn a_template_cannot_render_more_than_the_output_limit() {
    // Each placeholder copies the whole event; the render stops as soon as the limit is passed.
    let many = vec!["\"{{ data }}\""; 200].join(",");
    let t = Template::compile(&format!("[{many}]")).unwrap_or_else(|e| panic!("{e}"));
    let e = match t.render_limited(&event(), 4096) {
        Ok(out) => panic!("rendered {} bytes", out.len()),
        Err(e) => e,
    };
    assert!(e.message.contains("passes 4096 bytes"), "{e}");
    // The same inside one string.
    let text = vec!["{{ data }}"; 200].concat();
    let t = Template::compile(&format!("[\"{text}\"]")).unwrap_or_else(|e| panic!("{e}"));
    assert!(t.render_limited(&event(), 4096).is_err());
}

#[test]
fn templates_are_bounded_in_size_and_depth() {
    let big = format!("[\"{}\"]", "x".repeat(MAX_TEMPLATE_BYTES));
    assert!(compile_error(&big).message.contains("at most 16384"));
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert!(compile_error(&deep).message.contains("nest at most"));
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(Template::compile(&ok).is_ok());
}

#[test]
fn a_join_of_a_long_list_with_a_long_separator_is_stopped() {
    let mut e = event();
    e.insert("list".into(), Value::Array(vec![Value::Null; 20_000]));
    let sep = "s".repeat(1000);
    let t = Template::compile(&format!("[\"{{{{ list | join('{sep}') }}}}\"]"))
        .unwrap_or_else(|e| panic!("{e}"));
    let err = match t.render(&e) {
        Ok(out) => panic!("rendered {} bytes", out.len()),
        Err(err) => err,
    };
    assert!(err.message.contains("`join` makes a text longer"), "{err}");
}

#[test]
fn a_template_with_no_placeholders_is_serialised_once() {
    let t = Template::compile("{\"a\": [1, {\"b\": \"c\"}], \"d\": null}")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(t.root, Node::Literal(..)));
    let out: Value =
        serde_json::from_slice(&t.render(&event()).unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(out, json!({"a": [1, {"b": "c"}], "d": null}));
}

#[test]
fn chained_filters_cannot_grow_a_value_past_the_work_budget() {
    // Each `json` doubles its text: forty of them would make terabytes.
    let chain = vec!["json"; MAX_FILTERS].join(" | ");
    let t = Template::compile(&format!("[\"{{{{ 'a\\\"' | {chain} }}}}\"]"))
        .unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let e = match t.render(&event()) {
        Ok(out) => panic!("rendered {} bytes", out.len()),
        Err(e) => e,
    };
    // Sixteen doublings stay under each filter's cap; the payload they make does not.
    assert!(e.message.contains("passes 262144 bytes"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // Past a filter's cap, the filter says so.
    let mut big = event();
    big.insert("blob".into(), Value::String("\"".repeat(100_000)));
    let t = Template::compile("[\"{{ blob | json | json }}\"]").unwrap_or_else(|e| panic!("{e}"));
    let e = match t.render(&big) {
        Ok(out) => panic!("rendered {} bytes", out.len()),
        Err(e) => e,
    };
    assert!(e.message.contains("`json` makes a text longer than"), "{e}");
    // A large value copied by many filters, each cheap alone, runs out of budget too.
    let mut big = event();
    big.insert("blob".into(), Value::String("x".repeat(200_000)));
    let many = vec!["\"{{ blob | upper | lower | truncate(1) }}\""; 40].join(",");
    let t = Template::compile(&format!("[{many}]")).unwrap_or_else(|e| panic!("{e}"));
    let e = match t.render(&big) {
        Ok(out) => panic!("rendered {} bytes", out.len()),
        Err(e) => e,
    };
    assert!(
        e.message.contains("bytes of values and filter results"),
        "{e}"
    );
    // The limit on filters per placeholder.
    let too_many = vec!["upper"; MAX_FILTERS + 1].join(" | ");
    let e = compile_error(&format!("[\"{{{{ id | {too_many} }}}}\"]"));
    assert!(e.message.contains("at most 16 filters"), "{e}");
}

#[test]
fn messages_quote_at_most_sixty_characters_of_a_value_or_a_name() {
    let name = "n".repeat(5000);
    let e = compile_error(&format!("[\"{{{{ id | {name} }}}}\"]"));
    assert!(e.message.len() < 400, "{} bytes", e.message.len());
    let mut big = event();
    big.insert("blob".into(), Value::String("y".repeat(100_000)));
    let t = Template::compile("[\"{{ blob | number }}\"]").unwrap_or_else(|e| panic!("{e}"));
    let e = match t.render(&big) {
        Ok(_) => panic!("rendered"),
        Err(e) => e,
    };
    assert!(e.message.len() < 200, "{} bytes", e.message.len());
}

#[test]
fn the_output_limit_is_reported_where_the_template_passes_it() {
    let t = Template::compile("{\n \"a\": \"{{ data }}\",\n \"b\": \"text {{ data }}\"\n}")
        .unwrap_or_else(|e| panic!("{e}"));
    let e = match t.render_limited(&event(), 300) {
        Ok(out) => panic!("rendered {} bytes", out.len()),
        Err(e) => e,
    };
    // The string whose value passes it.
    assert_eq!((e.line, e.column), (3, 7), "{e}");
}

#[test]
fn numbers_in_the_template_are_sent_as_written() {
    let t = Template::compile("[1E2, -0, 123456789012345678901234567890, 0.1]")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = t.render(&event()).unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "[1E2,-0,123456789012345678901234567890,0.1]"
    );
}
