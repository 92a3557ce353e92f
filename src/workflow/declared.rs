//! Declared params. A workflow's `params` entry is a bare default (`to: region-a`) or a
//! declaration (`to: { default: region-a, enum: [region-a, region-b] }`, or with
//! `pattern: "region-[a-z]"`). What a group or a run gives must fit: a string, number or
//! boolean, within the `enum`, matching the whole `pattern`. A run can then put nothing
//! into a spec the workflow's author did not mean to allow.

use std::path::Path;

use indexmap::IndexMap;
use regex::Regex;
use serde_json::Value;

use super::params::{self, Params};
use super::source::{Diagnostic, Node, OrderedMap, Pos, Spanned};

/// What a declared param takes beyond a scalar.
#[derive(Clone, Debug, Default)]
pub struct Declared {
    /// `enum`: the values it may take.
    pub allowed: Option<Vec<Value>>,
    /// `pattern`, as written and compiled to match the whole value.
    pub pattern: Option<(String, Regex)>,
}

/// The declarations of a workflow's params, by name; a bare default declares nothing more.
pub type Declarations = IndexMap<String, Declared>;

/// The text a value is pasted into a spec as, which `enum` and `pattern` judge.
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Declared {
    /// Whether `value`, given for param `name`, fits: `Err` says why, naming the param.
    pub fn check(&self, name: &str, value: &Value) -> Result<(), String> {
        scalar(name, value)?;
        let text = as_text(value);
        if let Some(allowed) = &self.allowed
            && !allowed.iter().any(|a| as_text(a) == text)
        {
            let list: Vec<String> = allowed.iter().map(as_text).collect();
            return Err(format!(
                "param `{name}`: {value} is not one of {}",
                list.join(", ")
            ));
        }
        if let Some((written, re)) = &self.pattern
            && !re.is_match(&text)
        {
            return Err(format!(
                "param `{name}`: {value} does not match its pattern `{written}`"
            ));
        }
        Ok(())
    }
}

/// A value given for a param must be a string, number or boolean: it is pasted into specs.
/// A string may not hold `${`: pasted in, `${env:…}` or `${file:…}` would have the agent
/// read a secret of its host the workflow's author never named.
pub fn scalar(name: &str, value: &Value) -> Result<(), String> {
    match value {
        Value::String(s) if s.contains("${") => Err(format!(
            "param `{name}`: a value may not hold `${{` (secrets are named by the workflow, not by a run)"
        )),
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(()),
        other => Err(format!(
            "param `{name}`: {} is not a string, number or boolean",
            match other {
                Value::Null => "null",
                Value::Array(_) => "a list",
                _ => "a mapping",
            }
        )),
    }
}

/// A workflow's `params`: the defaults, and what each declared param takes.
pub fn read(
    file: &Path,
    raw: &OrderedMap<Spanned<Node>>,
    errors: &mut Vec<Diagnostic>,
) -> (Params, Declarations) {
    let mut defaults = Params::new();
    let mut declared = Declarations::new();
    for (k, v) in raw.iter() {
        let name = &k.value;
        let Node::Map(fields) = &v.value else {
            match params::scalar_to_json(&v.value) {
                Some(json) => {
                    defaults.insert(name.clone(), json);
                }
                None => errors.push(Pos::of(v).diag(
                    file,
                    format!(
                        "param `{name}` must be a scalar or {{ default, enum, pattern }}, not {}",
                        v.value.kind()
                    ),
                )),
            }
            continue;
        };
        let before = errors.len();
        let mut default = Value::Null;
        let mut d = Declared::default();
        for (field, value) in fields {
            let at = Pos::of(value);
            match field.value.as_str() {
                "default" => match params::scalar_to_json(&value.value) {
                    Some(json) => default = json,
                    None => errors.push(at.diag(
                        file,
                        format!(
                            "param `{name}`: `default` must be a scalar, not {}",
                            value.value.kind()
                        ),
                    )),
                },
                "enum" => match &value.value {
                    Node::Seq(items) if !items.is_empty() => {
                        let mut allowed = Vec::new();
                        for item in items {
                            match params::scalar_to_json(&item.value) {
                                Some(json) if scalar(name, &json).is_ok() => allowed.push(json),
                                _ => errors.push(Pos::of(item).diag(
                                    file,
                                    format!(
                                        "param `{name}`: an `enum` value must be a string, number or boolean, not {}",
                                        item.value.kind()
                                    ),
                                )),
                            }
                        }
                        d.allowed = Some(allowed);
                    }
                    other => errors.push(at.diag(
                        file,
                        format!(
                            "param `{name}`: `enum` must be a list of the values it may take, not {}",
                            if matches!(other, Node::Seq(_)) { "an empty list" } else { other.kind() }
                        ),
                    )),
                },
                "pattern" => match &value.value {
                    Node::Str(p) => match Regex::new(&format!("^(?:{p})$")) {
                        Ok(re) => d.pattern = Some((p.clone(), re)),
                        Err(e) => {
                            // The regex crate draws the place on lines of its own; the
                            // diagnostic is one line, and its place is the YAML's.
                            let e = e.to_string();
                            let why = e.lines().last().unwrap_or_default().trim();
                            let why = why.strip_prefix("error: ").unwrap_or(why);
                            errors.push(at.diag(
                                file,
                                format!("param `{name}`: `pattern` is not a regular expression: {why}"),
                            ))
                        }
                    },
                    other => errors.push(at.diag(
                        file,
                        format!(
                            "param `{name}`: `pattern` must be a string, not {}",
                            other.kind()
                        ),
                    )),
                },
                other => errors.push(Pos::of(field).diag(
                    file,
                    format!(
                        "param `{name}`: unknown field `{other}` (default, enum, pattern)"
                    ),
                )),
            }
        }
        // The default must fit what it declares, unless it is left out.
        if errors.len() == before
            && !default.is_null()
            && let Err(e) = d.check(name, &default)
        {
            errors.push(Pos::of(v).diag(file, format!("the default of {e}")));
        }
        defaults.insert(name.clone(), default);
        declared.insert(name.clone(), d);
    }
    (defaults, declared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared(allowed: Option<Vec<Value>>, pattern: Option<&str>) -> Declared {
        Declared {
            allowed,
            pattern: pattern.map(|p| {
                (
                    p.to_string(),
                    Regex::new(&format!("^(?:{p})$")).expect("a pattern"),
                )
            }),
        }
    }

    #[test]
    fn a_value_fits_its_enum_and_its_whole_pattern() {
        let regions = declared(Some(vec![json!("region-a"), json!("region-b")]), None);
        assert!(regions.check("to", &json!("region-a")).is_ok());
        let refused = regions.check("to", &json!("region-a; rm -rf /"));
        assert_eq!(
            refused,
            Err(r#"param `to`: "region-a; rm -rf /" is not one of region-a, region-b"#.into())
        );
        let counts = declared(None, Some("[0-9]{1,2}"));
        assert!(counts.check("replicas", &json!(12)).is_ok());
        assert!(counts.check("replicas", &json!("12")).is_ok());
        // The whole value, not a part of it.
        assert!(counts.check("replicas", &json!("12x")).is_err());
        assert!(counts.check("replicas", &json!(123)).is_err());
    }

    #[test]
    fn only_strings_numbers_and_booleans_are_values() {
        let any = Declared::default();
        assert!(any.check("flag", &json!(true)).is_ok());
        for bad in [
            json!(null),
            json!([1]),
            json!({ "a": 1 }),
            json!("x/${file:/etc/shadow}"),
            json!("${env:AWS_SECRET_ACCESS_KEY}"),
        ] {
            let e = any.check("to", &bad).expect_err("refused");
            assert!(e.starts_with("param `to`: "), "{e}");
        }
    }
}
