//! A placeholder: `{{ path | filter | filter(arg, …) }}`. The path names a value of the
//! canonical event (`data.caller.number`, `data.legs.0.number`); a quoted text, number,
//! `true`, `false` or `null` may stand in its place. Filters are a fixed list, each taking the
//! value on its left. What they produce is paid for from the render's budget
//! ([`super::MAX_WORK_BYTES`]) before or as it is made, so no chain of them costs more than
//! that, whatever the event's size.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use super::{Budget, Fail, Pos, MAX_FILTERS, MAX_OUTPUT_BYTES};

/// Where a placeholder's characters are in the template: offsets are exact when the string
/// holding it has no escapes; otherwise every mistake is reported at the string's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct At {
    pub base: usize,
    pub exact: bool,
}

impl At {
    pub fn of(self, offset: usize) -> Pos {
        if self.exact {
            Pos(self.base + offset)
        } else {
            Pos(self.base.saturating_sub(1))
        }
    }
    /// The string's opening quote.
    pub fn start(self) -> Pos {
        Pos(self.base.saturating_sub(1))
    }
    pub fn shift(self, offset: usize) -> At {
        At {
            base: if self.exact {
                self.base + offset
            } else {
                self.base
            },
            exact: self.exact,
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

#[derive(Debug, PartialEq)]
pub struct Expr {
    pub pos: Pos,
    head: Head,
    filters: Vec<(Pos, Filter)>,
}

#[derive(Debug, PartialEq)]
enum Head {
    Path(Vec<Seg>),
    Literal(Value),
}

#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The filters, as the README lists them.
pub const FILTERS: [&str; 14] = [
    "default", "upper", "lower", "string", "number", "epoch_ms", "epoch_s", "date", "map",
    "truncate", "join", "json", "div", "round",
];

#[derive(Debug, PartialEq)]
enum Filter {
    Default(Value),
    Upper,
    Lower,
    Text,
    Number,
    EpochMs,
    EpochS,
    Date,
    Map(Vec<(Value, Value)>, Option<Value>),
    Truncate(usize),
    Join(String),
    Json,
    Div(f64),
    Round,
}

/// The end of a placeholder's inside: the first `}}` outside quotes.
pub fn closing(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'}' && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

struct Lexer<'a> {
    s: &'a str,
    i: usize,
    at: At,
}

impl Lexer<'_> {
    fn ws(&mut self) {
        while self.s[self.i..].starts_with(|c: char| c.is_whitespace()) {
            self.i += self.s[self.i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    fn pos(&self) -> Pos {
        self.at.of(self.i)
    }
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, Fail> {
        Err((self.pos(), message.into()))
    }
    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn word(&mut self) -> &str {
        self.ws();
        let start = self.i;
        let len = self.s[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(self.s.len() - start);
        self.i += len;
        &self.s[start..start + len]
    }

    /// A quoted text, a number, `true`, `false` or `null`.
    fn literal(&mut self) -> Result<Option<Value>, Fail> {
        self.ws();
        let rest = &self.s[self.i..];
        if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let Some(end) = rest[1..].find(q) else {
                return self.fail("a quoted text that is never closed");
            };
            self.i += end + 2;
            return Ok(Some(Value::String(rest[1..end + 1].to_string())));
        }
        if rest.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            let len = rest
                .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | 'E' | '+')))
                .unwrap_or(rest.len());
            return match serde_json::from_str::<Number>(&rest[..len]) {
                Ok(n) => {
                    self.i += len;
                    Ok(Some(Value::Number(n)))
                }
                Err(_) => self.fail(format!("`{}` is not a number", &rest[..len])),
            };
        }
        let save = self.i;
        let value = match self.word() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            _ => {
                self.i = save;
                return Ok(None);
            }
        };
        Ok(Some(value))
    }

    fn path(&mut self) -> Result<Vec<Seg>, Fail> {
        let mut segs = Vec::new();
        loop {
            let word = self.word().to_string();
            if word.is_empty() {
                return self.fail("expected a path such as `data.caller.number`, or a quoted text");
            }
            segs.push(match word.parse::<usize>() {
                Ok(n) if !segs.is_empty() => Seg::Index(n),
                _ => Seg::Key(word),
            });
            if !self.s[self.i..].starts_with('.') {
                return Ok(segs);
            }
            self.i += 1;
        }
    }
}

pub fn parse(inner: &str, at: At) -> Result<Expr, Fail> {
    let mut lx = Lexer { s: inner, i: 0, at };
    lx.ws();
    let pos = lx.pos();
    let head = match lx.literal()? {
        Some(v) => Head::Literal(v),
        None => Head::Path(lx.path()?),
    };
    let mut filters = Vec::new();
    while lx.eat('|') {
        lx.ws();
        let fpos = lx.pos();
        let name = lx.word().to_string();
        let mut args = Vec::new();
        if lx.eat('(') && !lx.eat(')') {
            loop {
                match lx.literal()? {
                    Some(v) => args.push(v),
                    None => {
                        return lx.fail(
                            "a filter's arguments are quoted texts, numbers, true, false or null",
                        )
                    }
                }
                if lx.eat(')') {
                    break;
                }
                if !lx.eat(',') {
                    return lx.fail("expected `,` or `)` after the argument");
                }
            }
        }
        let filter = Filter::new(&name, args).map_err(|m| (fpos, m))?;
        if filters.len() == MAX_FILTERS {
            return Err((
                fpos,
                format!("at most {MAX_FILTERS} filters in one placeholder"),
            ));
        }
        filters.push((fpos, filter));
    }
    lx.ws();
    if lx.i < inner.len() {
        return lx.fail("expected `|` and a filter, or `}}`");
    }
    Ok(Expr { pos, head, filters })
}

impl Filter {
    fn new(name: &str, mut args: Vec<Value>) -> Result<Filter, String> {
        let none = |f: Filter, args: &[Value]| match args.is_empty() {
            true => Ok(f),
            false => Err(format!("`{name}` takes no arguments")),
        };
        let count = |n: usize, args: &[Value]| match args.len() == n {
            true => Ok(()),
            false => Err(format!("`{name}` takes {n} argument(s)")),
        };
        match name {
            "default" => {
                count(1, &args)?;
                Ok(Filter::Default(args.remove(0)))
            }
            "upper" => none(Filter::Upper, &args),
            "lower" => none(Filter::Lower, &args),
            "string" => none(Filter::Text, &args),
            "number" => none(Filter::Number, &args),
            "epoch_ms" => none(Filter::EpochMs, &args),
            "epoch_s" => none(Filter::EpochS, &args),
            "date" => none(Filter::Date, &args),
            "json" => none(Filter::Json, &args),
            "round" => none(Filter::Round, &args),
            "truncate" => match args.as_slice() {
                [Value::Number(n)] if n.as_u64().is_some() => {
                    Ok(Filter::Truncate(n.as_u64().unwrap_or(0) as usize))
                }
                _ => Err("`truncate` takes a number of characters, such as truncate(255)".into()),
            },
            "join" => match args.as_slice() {
                [Value::String(s)] => Ok(Filter::Join(s.clone())),
                _ => Err("`join` takes the separator, such as join(', ')".into()),
            },
            "div" => match args.as_slice() {
                [Value::Number(n)] if n.as_f64().is_some_and(|d| d != 0.0) => {
                    Ok(Filter::Div(n.as_f64().unwrap_or(1.0)))
                }
                _ => Err("`div` takes a number other than 0, such as div(1000)".into()),
            },
            "map" => {
                if args.len() < 2 {
                    return Err(
                        "`map` takes pairs of value and replacement, and optionally a last value for anything else: map('inbound', 'INBOUND', 'outbound', 'OUTBOUND', 'OTHER')"
                            .into(),
                    );
                }
                let fallback = (args.len() % 2 == 1).then(|| args.pop()).flatten();
                let mut pairs = Vec::with_capacity(args.len() / 2);
                let mut it = args.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Ok(Filter::Map(pairs, fallback))
            }
            "" => Err("expected a filter's name after `|`".into()),
            other => Err(format!(
                "there is no filter `{}`; the filters are {}",
                clip(other),
                FILTERS.join(", ")
            )),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Filter::Default(_) => "default",
            Filter::Upper => "upper",
            Filter::Lower => "lower",
            Filter::Text => "string",
            Filter::Number => "number",
            Filter::EpochMs => "epoch_ms",
            Filter::EpochS => "epoch_s",
            Filter::Date => "date",
            Filter::Map(..) => "map",
            Filter::Truncate(_) => "truncate",
            Filter::Join(_) => "join",
            Filter::Json => "json",
            Filter::Div(_) => "div",
            Filter::Round => "round",
        }
    }

    /// `null` (a missing value) passes through every filter but `default` and `map`. What a
    /// filter makes is paid for from `budget` before (or, for serialisation, as) it is made.
    fn apply<'a>(&self, v: Cow<'a, Value>, budget: &mut Budget) -> Result<Cow<'a, Value>, String> {
        let owned = |v: Value| Ok(Cow::Owned(v));
        match (self, v.as_ref()) {
            (Filter::Default(d), Value::Null) => owned(d.clone()),
            (Filter::Default(_), _) => Ok(v),
            (Filter::Map(pairs, fallback), x) => match pairs.iter().find(|(k, _)| k == x) {
                Some((_, to)) => owned(to.clone()),
                None => match fallback {
                    Some(f) => owned(f.clone()),
                    None => Ok(v),
                },
            },
            (_, Value::Null) => Ok(v),
            (Filter::Upper | Filter::Lower, Value::String(s)) => {
                // Case mapping can lengthen text (`ß` → `SS`): at most three bytes a byte.
                budget.spend(s.len().saturating_mul(3))?;
                owned(Value::String(match self {
                    Filter::Upper => s.to_uppercase(),
                    _ => s.to_lowercase(),
                }))
            }
            (Filter::Truncate(n), Value::String(s)) => {
                let cut: String = s.chars().take(*n).collect();
                budget.spend(cut.len())?;
                owned(Value::String(cut))
            }
            (Filter::Text, Value::String(_)) => Ok(v),
            (Filter::Text, x) => {
                let text = as_text(x, budget)?.into_owned();
                owned(Value::String(text))
            }
            (Filter::Json, x) => {
                let mut out = Vec::new();
                budget
                    .serialise(&mut out, x, MAX_OUTPUT_BYTES)
                    .map_err(|e| e.say("`json` makes a text"))?;
                owned(Value::String(
                    String::from_utf8(out).map_err(|e| e.to_string())?,
                ))
            }
            (Filter::Number, Value::Number(_)) => Ok(v),
            (Filter::Number, Value::String(s)) => match serde_json::from_str::<Number>(s.trim()) {
                Ok(n) => owned(Value::Number(n)),
                Err(_) => Err(format!("`number`: {:?} is not a number", clip(s))),
            },
            (Filter::EpochMs | Filter::EpochS | Filter::Date, Value::String(s)) => {
                let Some(ms) = crate::time::parse_rfc3339_ms(s) else {
                    return Err(format!(
                        "`{}`: {:?} is not an RFC 3339 time such as 2026-01-31T09:00:00Z",
                        self.name(),
                        clip(s)
                    ));
                };
                owned(match self {
                    Filter::EpochMs => Value::from(ms),
                    Filter::EpochS => Value::from(ms.div_euclid(1000)),
                    // The date as written: the local date of the time's own offset.
                    _ => Value::String(s.chars().take(10).collect()),
                })
            }
            (Filter::Div(d), Value::Number(n)) => owned(number(n.as_f64().unwrap_or(0.0) / d)),
            (Filter::Round, Value::Number(n)) => owned(number(n.as_f64().unwrap_or(0.0).round())),
            (Filter::Join(sep), Value::Array(items)) => {
                let mut s = String::new();
                for (i, item) in items.iter().enumerate() {
                    let piece = as_text(item, budget)?;
                    let add = piece.len() + if i > 0 { sep.len() } else { 0 };
                    if s.len() + add > MAX_OUTPUT_BYTES {
                        return Err(format!(
                            "`join` makes a text longer than {MAX_OUTPUT_BYTES} bytes"
                        ));
                    }
                    budget.spend(add)?;
                    if i > 0 {
                        s.push_str(sep);
                    }
                    s.push_str(&piece);
                }
                owned(Value::String(s))
            }
            (f, x) => Err(format!(
                "`{}` takes {}; this value is {}",
                f.name(),
                f.takes(),
                kind(x)
            )),
        }
    }

    fn takes(&self) -> &'static str {
        match self {
            Filter::Join(_) => "a list",
            Filter::Number => "a number or a text holding one",
            Filter::Div(_) | Filter::Round => "a number",
            _ => "text",
        }
    }
}

/// An integral result as an integer (`90000 | div(1000)` is `90`, not `90.0`).
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value as placed in text: text as it is, nothing for null, JSON for the rest (paid for
/// from `budget` as it is serialised).
pub fn as_text<'v>(v: &'v Value, budget: &mut Budget) -> Result<Cow<'v, str>, String> {
    Ok(match v {
        Value::Null => Cow::Borrowed(""),
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Bool(_) | Value::Number(_) => Cow::Owned(v.to_string()),
        other => {
            let mut out = Vec::new();
            budget
                .serialise(&mut out, other, MAX_OUTPUT_BYTES)
                .map_err(|e| e.say("this value as text is"))?;
            Cow::Owned(String::from_utf8(out).map_err(|e| e.to_string())?)
        }
    })
}

/// At most 60 characters of a value or name, for a message.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

impl Expr {
    pub fn eval<'a>(
        &self,
        event: &'a Map<String, Value>,
        budget: &mut Budget,
    ) -> Result<Cow<'a, Value>, Fail> {
        let mut v = match &self.head {
            Head::Literal(v) => Cow::Owned(v.clone()),
            Head::Path(segs) => lookup(event, segs).map_or(Cow::Owned(Value::Null), Cow::Borrowed),
        };
        for (pos, f) in &self.filters {
            v = f.apply(v, budget).map_err(|m| (*pos, m))?;
        }
        Ok(v)
    }
}

fn lookup<'a>(event: &'a Map<String, Value>, segs: &[Seg]) -> Option<&'a Value> {
    let mut it = segs.iter();
    let mut v = match it.next()? {
        Seg::Key(k) => event.get(k)?,
        Seg::Index(_) => return None,
    };
    for seg in it {
        v = match (seg, v) {
            (Seg::Key(k), Value::Object(m)) => m.get(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}
