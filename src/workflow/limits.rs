//! `limits:` in targets.yaml: how many stages may run at once against one provider, one
//! target or one agent kind. Cloud APIs throttle, and a region's worth of groups failing
//! over at once would otherwise fire every promote and every DNS change together.
//!
//! ```yaml
//! limits:
//!   providers: { rds: 5, route53: 10 }
//!   targets: { petstore-db: 1 }
//!   agents: { capacity: 20 }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use super::kinds::StageKinds;
use super::source::{Diagnostic, Node, Pos, Spanned};
use super::targets::{TargetKind, Targets};

/// The most stages a budget can admit at once: a budget is a cap, and one this high is none.
pub const MOST: i64 = 10_000;

/// How many stages may run at once against each provider, target and agent kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    pub providers: BTreeMap<String, u32>,
    pub targets: BTreeMap<String, u32>,
    pub agents: BTreeMap<String, u32>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty() && self.targets.is_empty() && self.agents.is_empty()
    }
}

/// A cap on how many stages run at once against one provider, target or agent kind:
/// `limits:` in targets.yaml. Held as numbered slots, one per stage, so that every replica
/// and agent process counts against the same limit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    /// `provider:rds`, `target:petstore-db`, `agent:database`; `dry-run:` before it for a
    /// dry run's, which never takes a real run's budget.
    pub key: String,
    pub limit: u32,
}

impl Budget {
    /// As people read it: `rds` for a provider's budget, `target petstore-db`, `agent exec`.
    pub fn name(&self) -> String {
        let key = self.key.strip_prefix("dry-run:").unwrap_or(&self.key);
        match key.split_once(':') {
            Some(("provider", name)) => name.to_string(),
            Some((kind, name)) => format!("{kind} {name}"),
            None => key.to_string(),
        }
    }
}

impl Targets {
    /// The budgets a stage of `agent` on `target` counts against, in key order (the order
    /// every taker claims them in, so that two never wait on each other).
    pub fn budgets(&self, agent: &str, target: Option<(TargetKind, &str)>) -> Vec<Budget> {
        let limits = &self.limits;
        if limits.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(&limit) = limits.agents.get(agent) {
            out.push(Budget {
                key: format!("agent:{agent}"),
                limit,
            });
        }
        if let Some((kind, name)) = target {
            if let Ok(t) = self.get(kind, name)
                && let Some(&limit) = limits.providers.get(&t.provider)
            {
                out.push(Budget {
                    key: format!("provider:{}", t.provider),
                    limit,
                });
            }
            if let Some(&limit) = limits.targets.get(name) {
                out.push(Budget {
                    key: format!("target:{name}"),
                    limit,
                });
            }
        }
        out.sort();
        out
    }
}

/// Reads and checks `limits:`: each name is a provider, target or agent kind that exists,
/// each limit a whole number from 1 to `MOST`.
pub(super) fn check(
    file: &Path,
    node: &Spanned<Node>,
    targets: &Targets,
    kinds: &dyn StageKinds,
    errors: &mut Vec<Diagnostic>,
) -> Limits {
    let mut limits = Limits::default();
    let Node::Map(sections) = &node.value else {
        errors.push(Pos::of(node).diag(
            file,
            format!(
                "limits must be a mapping of providers, targets and agents, not {}",
                node.value.kind()
            ),
        ));
        return limits;
    };
    let providers: Vec<&str> = {
        let mut all: Vec<&str> = TargetKind::ALL
            .iter()
            .flat_map(|&k| kinds.providers(k))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    let target_names: Vec<&str> = TargetKind::ALL
        .iter()
        .flat_map(|&k| targets.of(k).map(|t| t.name.as_str()))
        .collect();
    let agents = kinds.agents();
    for (section, entries) in sections {
        let (into, known): (&mut BTreeMap<String, u32>, &[&str]) = match section.value.as_str() {
            "providers" => (&mut limits.providers, &providers),
            "targets" => (&mut limits.targets, &target_names),
            "agents" => (&mut limits.agents, &agents),
            other => {
                errors.push(Pos::of(section).diag(
                    file,
                    format!("limits: unknown section `{other}` (providers, targets, agents)"),
                ));
                continue;
            }
        };
        let Node::Map(entries) = &entries.value else {
            errors.push(Pos::of(entries).diag(
                file,
                format!(
                    "limits.{}: must be a mapping of names to numbers, not {}",
                    section.value,
                    entries.value.kind()
                ),
            ));
            continue;
        };
        for (name, value) in entries {
            let what = format!("limits.{}.{}", section.value, name.value);
            if !known.contains(&name.value.as_str()) {
                let list = if known.is_empty() {
                    "none defined".to_string()
                } else {
                    known.join(", ")
                };
                errors.push(Pos::of(name).diag(
                    file,
                    format!("{what}: no such {} ({list})", singular(&section.value)),
                ));
                continue;
            }
            match value.value {
                Node::Int(n) if (1..=MOST).contains(&n) => {
                    into.insert(name.value.clone(), n as u32);
                }
                _ => errors.push(Pos::of(value).diag(
                    file,
                    format!(
                        "{what}: a limit is a whole number from 1 to {MOST}, not {}",
                        shown(&value.value)
                    ),
                )),
            }
        }
    }
    limits
}

fn singular(section: &str) -> &str {
    match section {
        "providers" => "provider",
        "targets" => "target",
        _ => "agent kind",
    }
}

fn shown(node: &Node) -> String {
    match node {
        Node::Int(n) => n.to_string(),
        Node::Float(f) => f.to_string(),
        other => other.kind().to_string(),
    }
}
