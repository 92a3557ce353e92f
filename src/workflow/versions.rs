//! What a run used, by hash: its workflow file, the templates its stages use and the
//! targets its stages name. A run keeps these, so that a group can say whether what it
//! would run now is what last recovered it, and an evidence report can name exactly what
//! ran. The workflow's hash is of the file's bytes, so `sha256sum` on it gives the same.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::plan::PlannedStage;
use super::targets::{TargetKind, Targets};
use super::templates;
use super::workflows::Workflow;

/// SHA-256 of `bytes`, in hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// The workflow file's hash; `None` for a plan no file holds (a failback worked out
    /// from the record).
    pub workflow: Option<String>,
    /// The templates used, by name and definition.
    pub templates: String,
    /// The targets.yaml entries the stages name.
    pub targets: String,
}

/// One of the three things a run's versions hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Workflow,
    Templates,
    Targets,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Workflow, Part::Templates, Part::Targets];

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Workflow => "workflow",
            Part::Templates => "templates",
            Part::Targets => "targets",
        }
    }
}

impl Versions {
    pub fn get(&self, part: Part) -> Option<&str> {
        match part {
            Part::Workflow => self.workflow.as_deref(),
            Part::Templates => Some(&self.templates),
            Part::Targets => Some(&self.targets),
        }
    }

    /// The parts whose hash differs from `other`'s.
    pub fn differing(&self, other: &Versions) -> Vec<Part> {
        Part::ALL
            .into_iter()
            .filter(|p| self.get(*p) != other.get(*p))
            .collect()
    }
}

/// The versions of a run of `wf` (none: a plan no file holds) that executes `stages`.
pub fn of(wf: Option<&Workflow>, targets: &Targets, stages: &[PlannedStage]) -> Versions {
    let used: Vec<Value> = wf
        .map(|w| w.templates.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|name| templates::find(name))
        .map(|t| {
            let spec: Vec<Value> = t
                .spec
                .iter()
                .map(|(k, v)| match v {
                    templates::Value::Str(s) => json!([k, s]),
                    templates::Value::Bool(b) => json!([k, b]),
                })
                .collect();
            json!({
                "name": t.name,
                "agent": t.agent,
                "spec": spec,
                "retry": [t.retry.0, t.retry.1, t.retry.2],
                "timeout": t.timeout,
            })
        })
        .collect();
    Versions {
        workflow: wf.map(|w| w.digest.clone()),
        templates: digest(Value::Array(used).to_string().as_bytes()),
        targets: digest(named_targets(targets, stages).to_string().as_bytes()),
    }
}

/// Every targets.yaml entry a stage's spec names, in a stable order. Names are read
/// from every string in a spec, so that any field naming a target (`cluster`, `from`,
/// `source`) counts.
fn named_targets(targets: &Targets, stages: &[PlannedStage]) -> Value {
    let mut names = Vec::new();
    for stage in stages {
        strings(&stage.spec, &mut names);
    }
    names.sort();
    names.dedup();
    let mut named = Vec::new();
    for kind in TargetKind::ALL {
        for name in &names {
            if let Some(t) = targets.of(kind).find(|t| &t.name == name) {
                named.push(json!({
                    "kind": kind.to_string(),
                    "name": t.name,
                    "provider": t.provider,
                    "fields": t.fields,
                }));
            }
        }
    }
    Value::Array(named)
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_what_sha256sum_says() {
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
