//! Fields several files share (durations, params), read with a located diagnostic for
//! each problem.

use std::path::Path;
use std::time::Duration;

use super::params::{self, Params};
use super::source::{Diagnostic, Node, OrderedMap, Pos, Spanned};

pub fn io_diag(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: 1,
        column: 1,
        message: format!("cannot read: {e}"),
    }
}

pub fn duration(
    file: &Path,
    s: &Spanned<String>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Duration> {
    match humantime::parse_duration(s.value.trim()) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(Pos::of(s).diag(
                file,
                format!(
                    "bad duration {:?}: {e} (write e.g. 30s, 10m, 1h30m)",
                    s.value
                ),
            ));
            None
        }
    }
}

pub fn param_map(
    file: &Path,
    raw: &OrderedMap<Spanned<Node>>,
    errors: &mut Vec<Diagnostic>,
) -> Params {
    let mut out = Params::new();
    for (k, v) in raw.iter() {
        match params::scalar_to_json(&v.value) {
            Some(json) => {
                out.insert(k.value.clone(), json);
            }
            None => errors.push(Pos::of(v).diag(
                file,
                format!(
                    "param `{}` must be a scalar, not {}",
                    k.value,
                    v.value.kind()
                ),
            )),
        }
    }
    out
}

/// A value as a message quotes it: a string in quotes, anything else by its kind.
pub fn describe(node: &Node) -> String {
    match node {
        Node::Str(s) => format!("{s:?}"),
        other => other.kind().to_string(),
    }
}
