//! Payload templates (profile `template`): a JSON document in which strings may hold
//! `{{ path | filter }}` placeholders, filled from the canonical event at delivery.
//!
//! This is a mapping language, not a programming language, on purpose. A tenant's template
//! runs on the delivery path of a shared node, so what it can cost is fixed when it is saved:
//! no loops, no variables, no arithmetic on text; each placeholder copies at most one value of
//! the event (through filters that never grow it past their arguments). Rendering is one pass
//! over the template, and the output is JSON by construction — the document's structure is
//! the template's, and every value placed in it is serialised, never spliced as text. A
//! general engine (Jinja and kin) would need each of those properties fenced in afterwards,
//! and its output checked for being JSON at every delivery.
//!
//! - A string that is exactly one placeholder becomes the value itself (a number stays a
//!   number, an object an object); a missing value is `null`.
//! - A string with text around its placeholders stays a string; values are written as text.
//! - Object keys are literal.

mod expr;
mod parse;

use serde_json::{Map, Value};

pub use expr::FILTERS;
use expr::{Expr, Part};

/// The longest template, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024;
/// The largest payload a template may render, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// How deeply the template's arrays and objects may nest.
pub const MAX_DEPTH: usize = 32;

/// What is wrong with a template, and where: 1-based line and column (in characters) of the
/// template text.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for TemplateError {}

/// A byte offset into the template text, turned into line and column when reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pos(pub usize);

/// The template's line and column of `pos`.
fn locate(source: &str, pos: Pos) -> (usize, usize) {
    let mut end = pos.0.min(source.len());
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    let before = &source[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[derive(Debug, PartialEq)]
enum Node {
    /// Serialised once, at compile time.
    Literal(String),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    /// A string that is one placeholder: the value, typed.
    Whole(Expr),
    /// Text and placeholders: a string.
    Text(Vec<Part>),
}

/// A compiled template.
#[derive(Debug, PartialEq)]
pub struct Template {
    root: Node,
    /// Kept to report render errors by line and column.
    source: String,
}

impl Template {
    pub fn compile(source: &str) -> Result<Template, TemplateError> {
        let fail = |pos: Pos, message: String| {
            let (line, column) = locate(source, pos);
            TemplateError {
                line,
                column,
                message,
            }
        };
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(fail(
                Pos(0),
                format!(
                    "the template is {} bytes; at most {MAX_TEMPLATE_BYTES} are allowed",
                    source.len()
                ),
            ));
        }
        let root = parse::document(source).map_err(|(pos, m)| fail(pos, m))?;
        Ok(Template {
            root,
            source: source.to_string(),
        })
    }

    /// Renders the template over `event` (the canonical payload, privacy rules applied) into
    /// JSON bytes, refusing output past [`MAX_OUTPUT_BYTES`] as soon as it is passed.
    pub fn render(&self, event: &Map<String, Value>) -> Result<Vec<u8>, TemplateError> {
        self.render_limited(event, MAX_OUTPUT_BYTES)
    }

    fn render_limited(
        &self,
        event: &Map<String, Value>,
        limit: usize,
    ) -> Result<Vec<u8>, TemplateError> {
        let mut out = Vec::with_capacity(self.source.len() * 2);
        let mut w = Writer {
            out: &mut out,
            event,
            limit,
        };
        w.node(&self.root).map_err(|(pos, message)| {
            let (line, column) = locate(&self.source, pos);
            TemplateError {
                line,
                column,
                message,
            }
        })?;
        Ok(out)
    }
}

type Fail = (Pos, String);

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    event: &'a Map<String, Value>,
    limit: usize,
}

impl Writer<'_> {
    fn check(&self, at: Pos) -> Result<(), Fail> {
        if self.out.len() > self.limit {
            return Err((
                at,
                format!(
                    "the rendered payload passes {} bytes; place fewer or smaller values",
                    self.limit
                ),
            ));
        }
        Ok(())
    }

    fn value(&mut self, v: &Value, at: Pos) -> Result<(), Fail> {
        serde_json::to_writer(&mut *self.out, v).map_err(|e| (at, e.to_string()))?;
        self.check(at)
    }

    fn node(&mut self, node: &Node) -> Result<(), Fail> {
        match node {
            Node::Literal(text) => {
                self.out.extend_from_slice(text.as_bytes());
                self.check(Pos(0))
            }
            Node::Object(members) => {
                self.out.push(b'{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.value(&Value::String(key.clone()), Pos(0))?;
                    self.out.push(b':');
                    self.node(value)?;
                }
                self.out.push(b'}');
                Ok(())
            }
            Node::Array(items) => {
                self.out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.node(item)?;
                }
                self.out.push(b']');
                Ok(())
            }
            Node::Whole(e) => {
                let v = e.eval(self.event)?;
                self.value(&v, e.pos)
            }
            Node::Text(parts) => {
                let mut text = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => text.push_str(t),
                        Part::Expr(e) => {
                            let v = e.eval(self.event)?;
                            expr::write_text(&mut text, &v);
                            if text.len() > self.limit {
                                return Err((
                                    e.pos,
                                    format!("the rendered payload passes {} bytes", self.limit),
                                ));
                            }
                        }
                    }
                }
                let at = match parts.first() {
                    Some(Part::Expr(e)) => e.pos,
                    _ => Pos(0),
                };
                self.value(&Value::String(text), at)
            }
        }
    }
}

#[cfg(test)]
mod tests;
