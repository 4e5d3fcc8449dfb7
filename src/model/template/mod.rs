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
/// What one render may produce in all — every filter's result, every text and the output —
/// whatever the event's size: the cost of a delivery is bounded by this, not by the event.
pub const MAX_WORK_BYTES: usize = 1024 * 1024;
/// Filters in one placeholder.
pub const MAX_FILTERS: usize = 16;
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

/// A part of the template, with where it starts (for errors).
#[derive(Debug, PartialEq)]
enum Node {
    /// Serialised once, at compile time.
    Literal(String, Pos),
    Object(Vec<(String, Node)>, Pos),
    Array(Vec<Node>, Pos),
    /// A string that is one placeholder: the value, typed.
    Whole(Expr),
    /// Text and placeholders: a string.
    Text(Vec<Part>, Pos),
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
            budget: Budget {
                left: MAX_WORK_BYTES,
            },
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

/// The bytes a render may still produce (see [`MAX_WORK_BYTES`]).
pub(crate) struct Budget {
    left: usize,
}

impl Budget {
    pub(crate) fn spend(&mut self, bytes: usize) -> Result<(), String> {
        match self.left.checked_sub(bytes) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(Self::exhausted()),
        }
    }

    fn exhausted() -> String {
        format!(
            "rendering this event takes more than {MAX_WORK_BYTES} bytes of values and filter results; place fewer or smaller values"
        )
    }

    /// Serialises `v` as JSON onto `out`, stopping as soon as `out` would pass `cap` bytes or
    /// the budget would run out: a large value is never serialised whole to be refused after.
    pub(crate) fn serialise(
        &mut self,
        out: &mut Vec<u8>,
        v: &Value,
        cap: usize,
    ) -> Result<(), Exceeded> {
        let start = out.len();
        let by_budget = start.saturating_add(self.left);
        let result = serde_json::to_writer(
            Capped {
                out: &mut *out,
                cap: cap.min(by_budget),
            },
            v,
        );
        let written = out.len() - start;
        if result.is_err() {
            // A `Value` serialises without error; only the cap stops it.
            out.truncate(start);
            return Err(if by_budget < cap {
                Exceeded::Budget
            } else {
                Exceeded::Cap(cap)
            });
        }
        self.spend(written).map_err(|_| Exceeded::Budget)
    }
}

/// Why a serialisation stopped.
pub(crate) enum Exceeded {
    Budget,
    /// Past this many bytes.
    Cap(usize),
}

impl Exceeded {
    /// The message, `what` naming what grew too large ("`json` makes a text").
    pub(crate) fn say(self, what: &str) -> String {
        match self {
            Exceeded::Budget => Budget::exhausted(),
            Exceeded::Cap(cap) => {
                format!("{what} longer than {cap} bytes; place fewer or smaller values")
            }
        }
    }
}

/// A writer that refuses to grow `out` past `cap`.
struct Capped<'a> {
    out: &'a mut Vec<u8>,
    cap: usize,
}

impl std::io::Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.cap {
            return Err(std::io::Error::other("over the limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    event: &'a Map<String, Value>,
    limit: usize,
    budget: Budget,
}

impl Writer<'_> {
    fn over(&self, at: Pos) -> Fail {
        (
            at,
            format!(
                "the rendered payload passes {} bytes; place fewer or smaller values",
                self.limit
            ),
        )
    }

    fn raw(&mut self, bytes: &[u8], at: Pos) -> Result<(), Fail> {
        if self.out.len() + bytes.len() > self.limit {
            return Err(self.over(at));
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn value(&mut self, v: &Value, at: Pos) -> Result<(), Fail> {
        self.budget
            .serialise(self.out, v, self.limit)
            .map_err(|e| match e {
                Exceeded::Budget => (at, Budget::exhausted()),
                Exceeded::Cap(_) => self.over(at),
            })
    }

    fn node(&mut self, node: &Node) -> Result<(), Fail> {
        match node {
            Node::Literal(text, at) => self.raw(text.as_bytes(), *at),
            Node::Object(members, at) => {
                self.raw(b"{", *at)?;
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        self.raw(b",", *at)?;
                    }
                    self.value(&Value::String(key.clone()), *at)?;
                    self.raw(b":", *at)?;
                    self.node(value)?;
                }
                self.raw(b"}", *at)
            }
            Node::Array(items, at) => {
                self.raw(b"[", *at)?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.raw(b",", *at)?;
                    }
                    self.node(item)?;
                }
                self.raw(b"]", *at)
            }
            Node::Whole(e) => {
                let v = e.eval(self.event, &mut self.budget)?;
                self.value(&v, e.pos)
            }
            Node::Text(parts, at) => {
                let mut text = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => self.push_text(&mut text, t, *at)?,
                        Part::Expr(e) => {
                            let v = e.eval(self.event, &mut self.budget)?;
                            let piece =
                                expr::as_text(&v, &mut self.budget).map_err(|m| (e.pos, m))?;
                            self.push_text(&mut text, &piece, e.pos)?;
                        }
                    }
                }
                self.value(&Value::String(text), *at)
            }
        }
    }

    /// Checked before the copy: a large value is refused, not copied first.
    fn push_text(&mut self, text: &mut String, piece: &str, at: Pos) -> Result<(), Fail> {
        if text.len() + piece.len() > self.limit {
            return Err(self.over(at));
        }
        self.budget.spend(piece.len()).map_err(|m| (at, m))?;
        text.push_str(piece);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
