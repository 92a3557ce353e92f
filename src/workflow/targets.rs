//! Targets: the estate as `targets.yaml` describes it (read and checked by
//! `targets_file`): where each logical name a workflow uses lives and which provider drives
//! it (the README's "Providers"). A database stage's `cluster` names a database, a capacity
//! stage's `cluster` a cluster, a dial stage's `endpoint` an endpoint. Without a
//! `targets.yaml` every target is simulated (provider `sim`), as it was before targets
//! existed; with one, every target a stage names must be in it.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde_json::Value;

use super::source::Pos;

/// The three kinds of target, one per section of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// `databases:`, which the database agent's `cluster` names.
    Database,
    /// `clusters:`, which the capacity agent's `cluster` names.
    Cluster,
    /// `endpoints:`, which the dial agent's `endpoint` names.
    Endpoint,
}

impl TargetKind {
    pub const ALL: [TargetKind; 3] = [
        TargetKind::Database,
        TargetKind::Cluster,
        TargetKind::Endpoint,
    ];

    /// The section of `targets.yaml`.
    pub fn section(self) -> &'static str {
        match self {
            TargetKind::Database => "databases",
            TargetKind::Cluster => "clusters",
            TargetKind::Endpoint => "endpoints",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Database => "database",
            TargetKind::Cluster => "cluster",
            TargetKind::Endpoint => "endpoint",
        })
    }
}

/// The provider every target has when there is no `targets.yaml`.
pub const SIMULATED: &str = "sim";

#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    pub provider: String,
    /// Every field but `provider`, for the provider to read.
    pub fields: Value,
    pub pos: Pos,
}

#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// The file they came from; `None`: there is none, and every target is simulated.
    pub file: Option<PathBuf>,
    by_kind: IndexMap<(TargetKind, String), Target>,
    /// How many stages may run at once against a provider, a target, an agent kind.
    pub limits: super::limits::Limits,
}

impl Targets {
    /// The target a stage names: from the file, or a simulated one when there is no file.
    pub fn get(&self, kind: TargetKind, name: &str) -> Result<Cow<'_, Target>, String> {
        if self.file.is_none() {
            return Ok(Cow::Owned(Target {
                name: name.to_string(),
                kind,
                provider: SIMULATED.into(),
                fields: Value::Object(Default::default()),
                pos: Pos::default(),
            }));
        }
        if let Some(t) = self.by_kind.get(&(kind, name.to_string())) {
            return Ok(Cow::Borrowed(t));
        }
        let known: Vec<&str> = self.of(kind).map(|t| t.name.as_str()).collect();
        Err(if known.is_empty() {
            format!(
                "{kind} `{name}` is not in targets.yaml, which has no {}",
                kind.section()
            )
        } else {
            format!(
                "{kind} `{name}` is not in targets.yaml ({}: {})",
                kind.section(),
                known.join(", ")
            )
        })
    }

    pub fn of(&self, kind: TargetKind) -> impl Iterator<Item = &Target> {
        self.by_kind
            .iter()
            .filter(move |((k, _), _)| *k == kind)
            .map(|(_, t)| t)
    }

    pub fn len(&self) -> usize {
        self.by_kind.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }
}

impl Targets {
    /// An empty set read from `file`, for its targets to be added.
    pub(super) fn from_file(file: PathBuf) -> Targets {
        Targets {
            file: Some(file),
            by_kind: IndexMap::new(),
            limits: Default::default(),
        }
    }

    /// Adds a target; `false` if one of its kind and name was there already.
    pub(super) fn add(&mut self, target: Target) -> bool {
        self.by_kind
            .insert((target.kind, target.name.clone()), target)
            .is_none()
    }
}
