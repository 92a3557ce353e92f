//! `${param}` substitution. Workflow `params` are defaults; a group and a run may override
//! them. A string that is exactly `${name}` takes the parameter's own type, so
//! `replicas: ${count}` stays a number. `$${` writes a literal `${`.

use std::path::Path;

use indexmap::IndexMap;
use serde_json::Value;

use super::source::{Diagnostic, Node, Pos, Spanned};

pub type Params = IndexMap<String, Value>;

/// A parameter value must be a scalar: it is pasted into strings.
pub fn scalar_to_json(node: &Node) -> Option<Value> {
    match node {
        Node::Null => Some(Value::Null),
        Node::Bool(b) => Some(Value::Bool(*b)),
        Node::Int(i) => Some(Value::from(*i)),
        Node::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number),
        Node::Str(s) => Some(Value::String(s.clone())),
        Node::Seq(_) | Node::Map(_) => None,
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

enum Piece<'a> {
    Text(&'a str),
    Param(&'a str),
}

fn split(s: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            pieces.push(Piece::Text(&rest[..i]));
            pieces.push(Piece::Text("${"));
            rest = escaped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in {s:?}"))?;
            let name = body[..end].trim();
            if name.starts_with("env:") || name.starts_with("file:") {
                // A secret, read by the agent when it runs: the plan keeps the reference.
                pieces.push(Piece::Text(&rest[..i + 2 + end + 1]));
                rest = &body[end + 1..];
                continue;
            }
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!("`${{{}}}` is not a parameter name", &body[..end]));
            }
            pieces.push(Piece::Text(&rest[..i]));
            pieces.push(Piece::Param(name));
            rest = &body[end + 1..];
        } else {
            pieces.push(Piece::Text(&rest[..=i]));
            rest = after;
        }
    }
    pieces.push(Piece::Text(rest));
    Ok(pieces)
}

pub fn substitute(s: &str, params: &Params) -> Result<Value, String> {
    let pieces = split(s)?;
    let meaningful: Vec<&Piece> = pieces
        .iter()
        .filter(|p| !matches!(p, Piece::Text("")))
        .collect();
    if let [Piece::Param(name)] = meaningful.as_slice() {
        return params
            .get(*name)
            .cloned()
            .ok_or_else(|| undefined(name, params));
    }
    let mut out = String::with_capacity(s.len());
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Param(name) => out.push_str(&as_text(
                params.get(name).ok_or_else(|| undefined(name, params))?,
            )),
        }
    }
    Ok(Value::String(out))
}

fn undefined(name: &str, params: &Params) -> String {
    let known: Vec<&str> = params.keys().map(String::as_str).collect();
    if known.is_empty() {
        format!("undefined parameter `${{{name}}}`: the workflow defines no params")
    } else {
        format!(
            "undefined parameter `${{{name}}}` (defined: {})",
            known.join(", ")
        )
    }
}

/// Converts a spec to JSON with parameters substituted; every problem is reported, each at
/// its own position.
pub fn resolve(
    node: &Spanned<Node>,
    params: &Params,
    file: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Value {
    match &node.value {
        Node::Str(s) => match substitute(s, params) {
            Ok(v) => v,
            Err(e) => {
                errors.push(Pos::of(node).diag(file, e));
                Value::Null
            }
        },
        Node::Seq(items) => Value::Array(
            items
                .iter()
                .map(|i| resolve(i, params, file, errors))
                .collect(),
        ),
        Node::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.value.clone(), resolve(v, params, file, errors)))
                .collect(),
        ),
        scalar => scalar_to_json(scalar).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        let mut p = Params::new();
        p.insert("to".into(), Value::from("region-a"));
        p.insert("n".into(), Value::from(6));
        p
    }

    #[test]
    fn substitutes_inside_text_and_keeps_type_when_whole() {
        assert_eq!(
            substitute("k8s-${to}", &params()),
            Ok(Value::from("k8s-region-a"))
        );
        assert_eq!(substitute("${n}", &params()), Ok(Value::from(6)));
        assert_eq!(substitute("x${n}", &params()), Ok(Value::from("x6")));
        assert_eq!(substitute("cost $5", &params()), Ok(Value::from("cost $5")));
        assert_eq!(substitute("$${to}", &params()), Ok(Value::from("${to}")));
        // Secrets are the agent's to read when it runs; planning keeps the reference.
        assert_eq!(
            substitute("Bearer ${env:TOKEN} in ${to} ${file:/run/key}", &params()),
            Ok(Value::from(
                "Bearer ${env:TOKEN} in region-a ${file:/run/key}"
            ))
        );
    }

    #[test]
    fn reports_undefined_and_malformed() {
        let e = substitute("${from}", &params()).expect_err("undefined");
        assert!(e.contains("undefined parameter `${from}`"), "{e}");
        assert!(substitute("${to", &params()).is_err());
        assert!(substitute("${a b}", &params()).is_err());
    }
}
