//! The template's JSON, read with the position of every part so that a mistake is reported
//! where it is. Tokens are decoded by serde_json (strings with their escapes, numbers); this
//! only walks the structure.

use std::collections::HashSet;

use serde_json::Value;

use super::expr::{self, At, Part};
use super::{Fail, Node, Pos, MAX_DEPTH};

pub fn document(source: &str) -> Result<Node, Fail> {
    let mut p = Parser {
        s: source,
        i: 0,
        depth: 0,
    };
    p.ws();
    if p.i == p.s.len() {
        return Err((
            Pos(0),
            "the template is empty; write a JSON document".into(),
        ));
    }
    let node = p.value()?;
    p.ws();
    if p.i < p.s.len() {
        return Err((
            Pos(p.i),
            "text after the end of the JSON document (one document per template)".into(),
        ));
    }
    Ok(literal_if_constant(node))
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8, what: &str) -> Result<(), Fail> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err((Pos(self.i), format!("expected {what}")))
        }
    }

    fn value(&mut self) -> Result<Node, Fail> {
        self.ws();
        match self.peek() {
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => {
                let (at, text) = self.string()?;
                string_node(at, &text)
            }
            Some(_) => self.scalar(),
            None => Err((
                Pos(self.i),
                "the document ends where a value should be".into(),
            )),
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Result<Node, Fail>) -> Result<Node, Fail> {
        if self.depth >= MAX_DEPTH {
            return Err((
                Pos(self.i),
                format!("arrays and objects nest at most {MAX_DEPTH} deep"),
            ));
        }
        self.depth += 1;
        let node = f(self);
        self.depth -= 1;
        node
    }

    fn object(&mut self) -> Result<Node, Fail> {
        let at = Pos(self.i);
        self.i += 1;
        let mut members = Vec::new();
        let mut seen = HashSet::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Node::Object(members, at));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err((Pos(self.i), "expected a key in double quotes".into()));
            }
            let (key_at, key) = self.string()?;
            if key.contains("{{") {
                return Err((
                    key_at.of(0),
                    "keys are literal: placeholders go in values only".into(),
                ));
            }
            if !seen.insert(key.clone()) {
                return Err((
                    key_at.of(0),
                    format!("the key {key:?} appears twice in this object"),
                ));
            }
            self.expect(b':', "`:` after the key")?;
            let value = self.value()?;
            members.push((key, value));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Node::Object(members, at));
                }
                _ => return Err((Pos(self.i), "expected `,` or `}`".into())),
            }
        }
    }

    fn array(&mut self) -> Result<Node, Fail> {
        let at = Pos(self.i);
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Node::Array(items, at));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Node::Array(items, at));
                }
                _ => return Err((Pos(self.i), "expected `,` or `]`".into())),
            }
        }
    }

    /// A string token: where its characters are, and its text with escapes decoded.
    fn string(&mut self) -> Result<(At, String), Fail> {
        let start = self.i;
        let bytes = self.s.as_bytes();
        let mut j = start + 1;
        loop {
            match bytes.get(j) {
                None => return Err((Pos(start), "this string is never closed".into())),
                Some(b'\\') => j += 2,
                Some(b'"') => break,
                Some(c) if *c < 0x20 => {
                    return Err((
                        Pos(j),
                        "a control character (a line break?) inside a string; write it as \\n"
                            .into(),
                    ))
                }
                Some(_) => j += 1,
            }
        }
        let raw = &self.s[start..=j];
        self.i = j + 1;
        let text: String = serde_json::from_str(raw)
            .map_err(|e| (Pos(start), format!("a string that is not valid JSON: {e}")))?;
        // Without escapes the decoded text is the raw text, so offsets into it are offsets into
        // the source; with them, a mistake is reported at the string's start.
        let at = At {
            base: start + 1,
            exact: text.len() + 2 == raw.len(),
        };
        Ok((at, text))
    }

    fn scalar(&mut self) -> Result<Node, Fail> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' | b':') {
                break;
            }
            self.i += 1;
        }
        let token = &self.s[start..self.i];
        match serde_json::from_str::<Value>(token) {
            // Kept as written (`1E2` stays `1E2`, a long integer keeps its digits): serde_json
            // has read it, so it is JSON.
            Ok(Value::Number(_) | Value::Bool(_) | Value::Null) => {
                Ok(Node::Literal(token.to_string(), Pos(start)))
            }
            _ => Err((
                Pos(start),
                format!("expected a JSON value, found `{}`", preview(token)),
            )),
        }
    }
}

fn preview(token: &str) -> String {
    token.chars().take(20).collect()
}

/// A string's node: a literal, one typed value, or text with values in it.
fn string_node(at: At, text: &str) -> Result<Node, Fail> {
    if !text.contains("{{") {
        if let Some(off) = text.find("}}") {
            return Err((
                at.of(off),
                "`}}` without an opening `{{` (write `{{ '}}' }}` for the text)".into(),
            ));
        }
        return Ok(Node::Literal(
            Value::String(text.to_string()).to_string(),
            at.start(),
        ));
    }
    let mut parts = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if let Some(stray) = rest[..open].find("}}") {
            return Err((at.of(offset + stray), "`}}` without an opening `{{`".into()));
        }
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let inner_start = open + 2;
        let Some(close) = expr::closing(&rest[inner_start..]) else {
            return Err((
                at.of(offset + open),
                "a placeholder `{{` that is never closed with `}}`".into(),
            ));
        };
        let inner = &rest[inner_start..inner_start + close];
        let e = expr::parse(inner, at.shift(offset + inner_start))?;
        parts.push(Part::Expr(e));
        let next = inner_start + close + 2;
        offset += next;
        rest = &rest[next..];
    }
    if let Some(stray) = rest.find("}}") {
        return Err((at.of(offset + stray), "`}}` without an opening `{{`".into()));
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(match parts.as_slice() {
        [Part::Expr(_)] => match parts.pop() {
            Some(Part::Expr(e)) => Node::Whole(e),
            _ => Node::Text(parts, at.start()),
        },
        _ => Node::Text(parts, at.start()),
    })
}

/// Objects and arrays with no placeholder inside are serialised once, when compiled.
fn literal_if_constant(node: Node) -> Node {
    match node {
        Node::Object(members, at) => {
            let members: Vec<(String, Node)> = members
                .into_iter()
                .map(|(k, v)| (k, literal_if_constant(v)))
                .collect();
            if members.iter().all(|(_, v)| matches!(v, Node::Literal(..))) {
                let mut text = String::from("{");
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        text.push(',');
                    }
                    text.push_str(&Value::String(k.clone()).to_string());
                    text.push(':');
                    if let Node::Literal(v, _) = v {
                        text.push_str(v);
                    }
                }
                text.push('}');
                Node::Literal(text, at)
            } else {
                Node::Object(members, at)
            }
        }
        Node::Array(items, at) => {
            let items: Vec<Node> = items.into_iter().map(literal_if_constant).collect();
            if items.iter().all(|v| matches!(v, Node::Literal(..))) {
                let inner: Vec<&str> = items
                    .iter()
                    .filter_map(|v| match v {
                        Node::Literal(t, _) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect();
                Node::Literal(format!("[{}]", inner.join(",")), at)
            } else {
                Node::Array(items, at)
            }
        }
        other => other,
    }
}
