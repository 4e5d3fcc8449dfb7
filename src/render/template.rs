//! The engine of customer-shaped payloads (`profile: "template"`): a minijinja template that
//! renders the canonical event into the JSON object a customer's API expects. Pure: no I/O.
//!
//! Every tenant may be hostile, so the template language is fenced in before it runs, not
//! only timed:
//! - **Fuel** bounds the instructions one render may run, so a loop cannot spin.
//! - **Memory** cannot be bounded by fuel: minijinja's `~` concatenates without a limit and `*`
//!   repeats a string up to 100 MB in one instruction, so a handful of `{% set %}` doubling a
//!   string would take gigabytes. Inside tags the operators that build strings or lists (`~`,
//!   `*`, `+`, `%`) are refused at save, and so are macros (recursion), `include`, `import`,
//!   `extends` and `block`. What is left can only copy and reshape the event: its output grows
//!   with the event and the template, and is cut at [`MAX_OUTPUT_BYTES`].
//! - **Filters, tests and functions** are an allow-list ([`allowed`]); none reads files or the
//!   clock, and none grows its input by more than a small factor.
//! - **Valid JSON by construction where it matters**: every `{{ … }}` is written as JSON
//!   (auto-escaping for JSON), so a value cannot break out of its place; the whole output must
//!   then parse as a JSON object.
//!
//! Errors carry the template's line and column (1-based); an output that is not JSON says
//! where in the output.

use std::fmt;
use std::io::Write;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::{Map, Value};

/// The longest template.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024;
/// The largest payload a template may render.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// Instructions one render may run: a few thousand cover any realistic payload.
const FUEL: u64 = 50_000;
const NAME: &str = "payload.json";

/// What is wrong with a template, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub message: String,
    /// Where in the template (1-based), when the error is the template's.
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

fn at(source: &str, offset: usize, message: impl Into<String>) -> TemplateError {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    TemplateError {
        message: message.into(),
        line: Some(line),
        column: Some(column),
    }
}

/// A template checked and compiled once, rendered per delivery.
pub struct Template {
    env: Environment<'static>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Template")
    }
}

/// Checks and compiles `source`.
pub fn compile(source: &str) -> Result<Template, TemplateError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(TemplateError {
            message: format!("a template is at most {MAX_SOURCE_BYTES} bytes"),
            line: None,
            column: None,
        });
    }
    fence(source)?;
    let mut env = Environment::empty();
    env.set_auto_escape_callback(|_| AutoEscape::Json);
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(FUEL));
    allowed(&mut env);
    env.add_template_owned(NAME, source.to_string())
        .map_err(|e| located(source, &e))?;
    Ok(Template { env })
}

impl Template {
    /// Renders `context` (the names the template sees, e.g. `event`) into a JSON object.
    pub fn render(&self, context: &Value) -> Result<Map<String, Value>, TemplateError> {
        let tmpl = self.env.get_template(NAME).map_err(|e| plain(&e))?;
        let mut out = Capped(Vec::with_capacity(1024));
        if let Err(e) = tmpl.render_captured_to(context, &mut out) {
            return Err(match out.0.len() >= MAX_OUTPUT_BYTES {
                true => TemplateError {
                    message: format!("the payload is larger than {MAX_OUTPUT_BYTES} bytes"),
                    line: None,
                    column: None,
                },
                false => located(tmpl.source(), &e),
            });
        }
        let text = String::from_utf8_lossy(&out.0);
        serde_json::from_str::<Map<String, Value>>(&text).map_err(|e| TemplateError {
            message: format!(
                "the payload is not a JSON object: {e} (in the output: {})",
                excerpt(&text, e.line(), e.column())
            ),
            line: None,
            column: None,
        })
    }
}

/// A writer that refuses to grow past [`MAX_OUTPUT_BYTES`].
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT_BYTES {
            self.0.resize(MAX_OUTPUT_BYTES, b' ');
            return Err(std::io::Error::other("payload too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The output's line around a JSON error, with the column marked.
fn excerpt(text: &str, line: usize, column: usize) -> String {
    let l = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
    let start = column.saturating_sub(30);
    let shown: String = l.chars().skip(start).take(60).collect();
    format!("line {line}, column {column}: `{shown}`")
}

fn located(source: &str, e: &minijinja::Error) -> TemplateError {
    let message = e
        .detail()
        .map_or_else(|| e.kind().to_string(), String::from);
    match (e.range(), e.line()) {
        (Some(r), _) => at(source, r.start, message),
        (None, Some(line)) => TemplateError {
            message,
            line: Some(line),
            column: None,
        },
        _ => plain(e),
    }
}

fn plain(e: &minijinja::Error) -> TemplateError {
    TemplateError {
        message: e.to_string(),
        line: None,
        column: None,
    }
}

/// The filters and tests a template may use: reshaping and formatting values, never growing
/// them (no `replace`, `indent`, `center`, `join` of generated lists, `format`, `safe`).
fn allowed(env: &mut Environment<'static>) {
    use minijinja::{filters as f, tests as t};
    env.add_filter("default", f::default);
    env.add_filter("upper", f::upper);
    env.add_filter("lower", f::lower);
    env.add_filter("title", f::title);
    env.add_filter("capitalize", f::capitalize);
    env.add_filter("trim", f::trim);
    env.add_filter("length", f::length);
    env.add_filter("first", f::first);
    env.add_filter("last", f::last);
    env.add_filter("int", f::int);
    env.add_filter("float", f::float);
    env.add_filter("round", f::round);
    env.add_filter("abs", f::abs);
    env.add_test("defined", t::is_defined);
    env.add_test("undefined", t::is_undefined);
    env.add_test("none", t::is_none);
    env.add_test("number", t::is_number);
    env.add_test("string", t::is_string);
}

/// Statements that define or load other templates (macros recurse; there are no others).
const FORBIDDEN_WORDS: [&str; 7] = [
    "macro", "call", "include", "import", "extends", "block", "filter",
];

/// Refuses what could make a render allocate without bound (module docs): inside `{{ }}` and
/// `{% %}`, outside string literals, the operators `~ * + %` and the statements above.
fn fence(source: &str) -> Result<(), TemplateError> {
    let bytes = source.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let open = &source[i..i + 2];
        let close = match open {
            "{{" => "}}",
            "{%" => "%}",
            "{#" => {
                i = source[i..].find("#}").map_or(bytes.len(), |e| i + e + 2);
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        i += 2;
        let mut quote: Option<u8> = None;
        let mut assigns = false;
        let mut word = String::new();
        let mut words = Vec::new();
        while i < bytes.len() {
            let b = bytes[i];
            if let Some(q) = quote {
                if b == b'\\' {
                    i += 2;
                    continue;
                }
                if b == q {
                    quote = None;
                }
                i += 1;
                continue;
            }
            if source[i..].starts_with(close) {
                break;
            }
            match b {
                b'"' | b'\'' => quote = Some(b),
                b'=' => assigns = true,
                b'~' | b'*' | b'+' | b'%' => {
                    return Err(at(
                        source,
                        i,
                        format!(
                            "`{}` is not allowed in a payload template (it builds strings of any size); place values as they are",
                            b as char
                        ),
                    ))
                }
                _ => {}
            }
            if b.is_ascii_alphanumeric() || b == b'_' {
                word.push(b as char);
            } else if !word.is_empty() {
                words.push((i - word.len(), std::mem::take(&mut word)));
            }
            i += 1;
        }
        if !word.is_empty() {
            words.push((i - word.len(), word));
        }
        if open == "{%" {
            // `{% set x %}…{% endset %}` keeps what its body renders in memory, past the
            // output's limit: only `{% set x = … %}` is allowed.
            if let Some((offset, first)) = words.first() {
                if first == "set" && !assigns {
                    return Err(at(
                        source,
                        *offset,
                        "`{% set name %}…{% endset %}` is not allowed in a payload template; use `{% set name = value %}`",
                    ));
                }
            }
            // `raw` keeps its body literal: skip to its end.
            if let Some((_, first)) = words.first() {
                if first == "raw" {
                    i = source[i..].find("endraw").map_or(bytes.len(), |e| i + e);
                    continue;
                }
            }
        }
        if let Some((offset, w)) = words.iter().find(|(_, w)| {
            FORBIDDEN_WORDS.contains(&w.as_str())
                || w.strip_prefix("end")
                    .is_some_and(|rest| FORBIDDEN_WORDS.contains(&rest))
        }) {
            return Err(at(
                source,
                *offset,
                format!("`{w}` is not allowed in a payload template: a payload template is one template, without macros, blocks or other templates"),
            ));
        }
        i += 2;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({"event": {"id": "pbx7-1", "type": "call.completed", "call_id": "c-42",
                         "data": {"remote_number": "+44 161 000 0001", "duration_ms": 61987,
                                  "caller": {"name": "Ann \"Quotes\" O'Neil"},
                                  "parties": [{"name": "a"}, {"name": "b"}]}}})
    }

    #[test]
    fn a_template_shapes_the_event_and_values_stay_json() {
        let t = compile(
            r#"{"phone": {{ event.data.remote_number }},
                "seconds": {{ (event.data.duration_ms / 1000) | round | int }},
                "name": {{ event.data.caller.name | upper }},
                "missing": {{ event.data.nothing.deeper | default(none) }},
                "parties": [{% for p in event.data.parties %}{{ p.name }}{% if not loop.last %}, {% endif %}{% endfor %}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let out = t.render(&ctx()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Value::Object(out),
            json!({"phone": "+44 161 000 0001", "seconds": 62,
                   "name": "ANN \"QUOTES\" O'NEIL", "missing": null, "parties": ["a", "b"]})
        );
    }

    #[test]
    fn a_syntax_error_names_its_line_and_column() {
        let e = compile("{\n  \"a\": {{ event.id }},\n  \"b\": {{ event.id | }}\n}")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.column.is_some_and(|c| c > 10), "{e}");
    }

    #[test]
    fn operators_that_build_strings_and_macros_are_refused_where_they_stand() {
        for (source, word, line, column) in [
            ("{\"a\": {{ \"x\" * 100000000 }}}", "`*`", 1, 14),
            ("{% set a = event.id ~ event.id %}{}", "`~`", 1, 21),
            ("{\n\"a\": {{ event.id + event.id }}}", "`+`", 2, 18),
            ("{% macro f(s) %}{{ s }}{% endmacro %}{}", "`macro`", 1, 4),
            ("{% include \"other\" %}{}", "`include`", 1, 4),
            (
                "{% set big %}{{ event }}{% endset %}{}",
                "`{% set name %}",
                1,
                4,
            ),
        ] {
            let e = compile(source).err().unwrap_or_else(|| panic!("{source}"));
            assert!(e.message.contains(word), "{source}: {e}");
            assert_eq!(
                (e.line, e.column),
                (Some(line), Some(column)),
                "{source}: {e}"
            );
        }
        // Outside tags and inside strings they are text.
        let t = compile(r#"{"note": "a*b ~ c + 100%", "q": {{ "x*y~z" }}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        let out = t.render(&ctx()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out["q"], "x*y~z");
    }

    #[test]
    fn a_filter_outside_the_allow_list_is_unknown() {
        let t = compile(r#"{"a": {{ event.id | replace("p", "pppp") }}}"#);
        let e = match t {
            Err(e) => e,
            Ok(t) => t.render(&ctx()).err().unwrap_or_else(|| panic!("rendered")),
        };
        assert!(
            e.message.contains("replace") || e.message.contains("unknown filter"),
            "{e}"
        );
    }

    #[test]
    fn a_loop_runs_out_of_fuel_and_a_large_payload_is_cut() {
        let spin = compile(
            "{% for a in event.data.parties %}{% for b in event.data.parties %}{% for c in event.data.parties %}{% endfor %}{% endfor %}{% endfor %}{}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut big = ctx();
        big["event"]["data"]["parties"] = json!((0..100).collect::<Vec<_>>());
        let e = spin.render(&big).err().unwrap_or_else(|| panic!("ran"));
        assert!(e.message.contains("fuel"), "{e}");

        let wide =
            compile(r#"{"a": [{% for p in event.data.parties %}{{ event.data }},{% endfor %} 0]}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        let mut data = ctx();
        data["event"]["data"]["parties"] = json!((0..1000).collect::<Vec<_>>());
        let e = wide
            .render(&data)
            .err()
            .unwrap_or_else(|| panic!("rendered"));
        assert!(e.message.contains("larger than"), "{e}");
    }

    #[test]
    fn an_output_that_is_not_a_json_object_says_where() {
        let t = compile("{\"a\": {{ event.id }} \"b\": 1}").unwrap_or_else(|e| panic!("{e}"));
        let e = t.render(&ctx()).err().unwrap_or_else(|| panic!("rendered"));
        assert!(e.message.contains("not a JSON object"), "{e}");
        assert!(e.message.contains("line 1, column"), "{e}");
        let t = compile("[1, 2]").unwrap_or_else(|e| panic!("{e}"));
        assert!(t.render(&ctx()).is_err());
    }

    #[test]
    fn a_template_too_long_is_refused_before_parsing() {
        let e = compile(&" ".repeat(MAX_SOURCE_BYTES + 1))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(e.message.contains("at most"), "{e}");
    }
}
