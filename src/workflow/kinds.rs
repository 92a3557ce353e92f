//! What the checks need to know of agents and providers, asked through one trait so that
//! the workflow format depends on no agent: the agent registry answers (`agents::Registry`),
//! and a test can register a kind of its own.

use std::path::Path;

use serde_json::Value;

use super::source::{Diagnostic, Node, PathSegment, Pos, Spanned};
use super::targets::{TargetKind, Targets};

/// A spec (or a target's fields) that its agent (or provider) rejects, with the path
/// inside it where it went wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub path: Vec<PathSegment>,
    pub message: String,
}

impl SpecError {
    /// A problem with the field at `path` (`&[]`: the spec as a whole).
    pub fn at(path: &[&str], message: impl Into<String>) -> SpecError {
        SpecError {
            path: path
                .iter()
                .map(|k| PathSegment::Key(k.to_string()))
                .collect(),
            message: message.into(),
        }
    }

    /// `field` as a person would write it: `command[2]`, `key.secret`.
    pub fn field(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                PathSegment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    /// A diagnostic at the node the path leads to inside `node`, as `{what} rejected at
    /// `field`: message`.
    pub fn diag(&self, file: &Path, node: &Spanned<Node>, what: &str) -> Diagnostic {
        let at = Node::locate(node, &self.path);
        let field = self.field();
        let field = if field.is_empty() {
            String::new()
        } else {
            format!(" at `{field}`")
        };
        Pos::of(at).diag(file, format!("{what} rejected{field}: {}", self.message))
    }
}

/// Parses a spec into an agent's (or provider's) own type; a rejection says where.
pub fn parse<T: for<'de> serde::Deserialize<'de>>(spec: &Value) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(spec).map_err(|e| {
        let path = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(PathSegment::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(PathSegment::Index(*index)),
                _ => None,
            })
            .collect();
        SpecError {
            path,
            message: e.inner().to_string(),
        }
    })
}

/// The agent kinds stages may name, and the providers targets may name.
pub trait StageKinds: Send + Sync {
    /// Every agent kind a stage may name, in the order to list them.
    fn agents(&self) -> Vec<&'static str>;

    /// Checks a stage's spec, with its parameters resolved, against its agent (one of
    /// `agents()`). `targets` resolves the logical names the spec uses.
    fn check(&self, agent: &str, spec: &Value, targets: &Targets) -> Result<(), SpecError>;

    /// The lease key for a spec when its stage names none: two stages with one key never
    /// run at once.
    fn resource(&self, agent: &str, spec: &Value) -> Option<String>;

    /// The target a spec works on, for the budgets of its provider and its own.
    fn target(&self, _agent: &str, _spec: &Value) -> Option<(TargetKind, String)> {
        None
    }

    /// The providers that can drive targets of this kind.
    fn providers(&self, kind: TargetKind) -> Vec<&'static str>;

    /// Checks a target's fields (all but `provider`) against its provider.
    fn check_target(
        &self,
        kind: TargetKind,
        provider: &str,
        fields: &Value,
    ) -> Result<(), SpecError>;
}
