//! A workflow file: its stages, their order and waits, retries, timeouts, gates and specs.
//! Every problem is reported at its place in the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use super::declared::{self, Declarations};
use super::fields::{self, describe};
use super::kinds::{self, StageKinds};
use super::model::{DEFAULT_TIMEOUT, RetryPolicy};
use super::params::{self, Params};
use super::raw::RawWorkflow;
use super::source::{Diagnostic, Node, Pos, Spanned};
use super::targets::Targets;
use super::templates;

/// A stage that is only a gate: the approval is the whole of its work, and no agent runs
/// it. Any stage can have a gate (`approval: required`); this one has nothing else.
pub const APPROVAL: &str = "approval";

#[derive(Clone, Debug)]
pub struct Stage {
    pub name: String,
    pub agent: String,
    /// Indexes of the stages this one waits for.
    pub after: Vec<usize>,
    pub spec: Spanned<Node>,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// A person approves before the stage starts.
    pub approval: bool,
    /// The lease key, when the workflow names one instead of the agent's default.
    pub resource: Option<Spanned<Node>>,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    /// The defaults of its params.
    pub params: Params,
    /// What its declared params take (`enum`, `pattern`).
    pub declared: Declarations,
    pub stages: Vec<Stage>,
    pub file: PathBuf,
    /// SHA-256 of the file as read, hex: what `sha256sum` says of it.
    pub digest: String,
    /// The templates its stages use (`uses:`), by name, each once.
    pub templates: Vec<String>,
}

/// What an approval stage's spec may say.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalSpec {
    #[allow(dead_code)]
    message: Option<String>,
}

/// What the checks of a workflow consult: the agent kinds and the targets.
pub struct Context<'a> {
    pub kinds: &'a dyn StageKinds,
    pub targets: &'a Targets,
}

pub(super) fn check(
    file: &Path,
    raw: RawWorkflow,
    cx: &Context<'_>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Workflow> {
    let before = errors.len();
    let (params, declared) = declared::read(file, &raw.params, errors);
    if raw.name.value.trim().is_empty() {
        errors.push(Pos::of(&raw.name).diag(file, "workflow name is empty"));
    }
    let entries: &[_] = raw.stages.value.as_ref().map_or(&[], |m| &m.0);
    if entries.is_empty() {
        errors.push(Pos::of(&raw.stages).diag(
            file,
            "`stages` is empty: a workflow needs at least one stage",
        ));
    }
    let index: IndexMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.value.as_str(), i))
        .collect();

    let mut stages = Vec::with_capacity(entries.len());
    for (i, (name, raw_stage)) in entries.iter().enumerate() {
        let Some(st) = templates::expand(file, name, &raw_stage.value, errors) else {
            continue;
        };
        let st = &st;
        let Some(agent_node) = &st.agent else {
            continue;
        };
        let agent = agent_node.value.as_str();
        let known = agent == APPROVAL || cx.kinds.agents().contains(&agent);
        if !known {
            let mut kinds = cx.kinds.agents();
            kinds.push(APPROVAL);
            errors.push(Pos::of(agent_node).diag(
                file,
                format!(
                    "stage `{}`: unknown agent `{agent}` (known: {})",
                    name.value,
                    kinds.join(", ")
                ),
            ));
        }
        let after = match &st.after {
            // Without `after`, a stage waits for the one before it in the file.
            None => i.checked_sub(1).into_iter().collect(),
            Some(list) => list
                .iter()
                .filter_map(|dep| match index.get(dep.value.as_str()) {
                    Some(&j) if j == i => {
                        errors.push(
                            Pos::of(dep)
                                .diag(file, format!("stage `{}` waits for itself", name.value)),
                        );
                        None
                    }
                    Some(&j) => Some(j),
                    None => {
                        errors.push(Pos::of(dep).diag(
                            file,
                            format!(
                                "stage `{}`: `after` names missing stage `{}`",
                                name.value, dep.value
                            ),
                        ));
                        None
                    }
                })
                .collect(),
        };
        let mut retry = RetryPolicy::default();
        if let Some(r) = &st.retry {
            if let Some(m) = &r.max_attempts {
                if m.value == 0 {
                    errors.push(Pos::of(m).diag(file, "max_attempts must be at least 1"));
                }
                retry.max_attempts = m.value.max(1);
            }
            if let Some(d) = r
                .initial_backoff
                .as_ref()
                .and_then(|d| fields::duration(file, d, errors))
            {
                retry.initial_backoff = d;
            }
            if let Some(d) = r
                .max_backoff
                .as_ref()
                .and_then(|d| fields::duration(file, d, errors))
            {
                retry.max_backoff = d;
            }
            if retry.initial_backoff > retry.max_backoff
                && let Some(m) = &r.max_backoff
            {
                errors.push(Pos::of(m).diag(file, "max_backoff is shorter than initial_backoff"));
            }
        }
        let timeout = st
            .timeout
            .as_ref()
            .and_then(|t| fields::duration(file, t, errors))
            .unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero()
            && let Some(t) = &st.timeout
        {
            errors.push(Pos::of(t).diag(file, "timeout must be above zero"));
        }
        let approval = match &st.approval {
            None => false,
            Some(a) => match &a.value {
                Node::Bool(b) => *b,
                Node::Str(s) if s == "required" => true,
                Node::Str(s) if s == "none" => false,
                other => {
                    errors.push(Pos::of(a).diag(
                        file,
                        format!(
                            "approval must be `required` or `none`, not {}",
                            describe(other)
                        ),
                    ));
                    false
                }
            },
        };
        let spec = st.spec.clone().unwrap_or_else(|| {
            Spanned::new(
                Node::Map(Vec::new()),
                agent_node.referenced,
                agent_node.defined,
            )
        });
        if known {
            check_spec(file, &name.value, agent, &spec, &params, cx, errors);
        }
        if let Some(r) = &st.resource {
            let mut errs = Vec::new();
            match params::resolve(r, &params, file, &mut errs) {
                Value::String(_) => {}
                _ if !errs.is_empty() => {}
                _ => errs.push(Pos::of(r).diag(file, "resource must be a string")),
            }
            errors.extend(errs);
        }
        let _ = &st.description;
        stages.push(Stage {
            name: name.value.clone(),
            agent: agent.to_string(),
            after,
            spec,
            retry,
            timeout,
            approval: approval || agent == APPROVAL,
            resource: st.resource.clone(),
            pos: Pos::of(name),
        });
    }
    if stages.len() != entries.len() {
        // A stage whose template could not be applied is missing, and `after` counts by
        // position: its errors are reported, and the cycle check waits for the fix.
        return None;
    }
    if let Some(cycle) = find_cycle(&stages) {
        let names: Vec<&str> = cycle.iter().map(|&i| stages[i].name.as_str()).collect();
        // An edge nobody wrote (a stage without `after` waits for the one above it) is
        // named, or the cycle reads as if it came from nowhere.
        let implicit: Vec<String> = cycle
            .iter()
            .zip(cycle.iter().cycle().skip(1))
            .filter(|&(&from, &to)| entries[to].1.value.after.is_none() && to == from + 1)
            .map(|(&from, &to)| {
                format!(
                    "`{}` has no `after`, so it waits for `{}`, the stage above it",
                    stages[to].name, stages[from].name
                )
            })
            .collect();
        let note = if implicit.is_empty() {
            String::new()
        } else {
            format!(" ({})", implicit.join("; "))
        };
        errors.push(stages[cycle[0]].pos.diag(
            file,
            format!(
                "stages form a cycle: {} → {}{note}",
                names.join(" → "),
                names[0]
            ),
        ));
    }
    let mut templates: Vec<String> = entries
        .iter()
        .filter_map(|(_, st)| Some(st.value.uses.as_ref()?.value.clone()))
        .collect();
    templates.sort();
    templates.dedup();
    (errors.len() == before).then(|| Workflow {
        name: raw.name.value,
        description: raw.description,
        params,
        declared,
        stages,
        file: file.to_path_buf(),
        digest: String::new(),
        templates,
    })
}

/// Resolves the spec with the workflow's defaults and asks the agent whether it accepts it.
fn check_spec(
    file: &Path,
    stage: &str,
    agent: &str,
    spec: &Spanned<Node>,
    params: &Params,
    cx: &Context<'_>,
    errors: &mut Vec<Diagnostic>,
) {
    let before = errors.len();
    let value = params::resolve(spec, params, file, errors);
    if errors.len() != before {
        return;
    }
    if let Err(e) = check_resolved(agent, &value, cx) {
        errors.push(e.diag(file, spec, &format!("stage `{stage}`: {agent} spec")));
    }
}

/// Checks a spec whose parameters are resolved: an approval stage's here, any other by its
/// agent.
pub(super) fn check_resolved(
    agent: &str,
    spec: &Value,
    cx: &Context<'_>,
) -> Result<(), kinds::SpecError> {
    if agent == APPROVAL {
        kinds::parse::<ApprovalSpec>(spec).map(drop)
    } else {
        cx.kinds.check(agent, spec, cx.targets)
    }
}

/// A cycle as stage indexes in order, if the `after` edges have one.
fn find_cycle(stages: &[Stage]) -> Option<Vec<usize>> {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    fn visit(
        i: usize,
        stages: &[Stage],
        mark: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        mark[i] = 1;
        path.push(i);
        for &d in &stages[i].after {
            if mark[d] == 1 {
                let start = path.iter().position(|&p| p == d).unwrap_or(0);
                return Some(path[start..].to_vec());
            }
            if mark[d] == 0
                && let Some(c) = visit(d, stages, mark, path)
            {
                return Some(c);
            }
        }
        path.pop();
        mark[i] = 2;
        None
    }
    let mut mark = vec![0u8; stages.len()];
    for i in 0..stages.len() {
        if mark[i] == 0
            && let Some(mut c) = visit(i, stages, &mut mark, &mut Vec::new())
        {
            // Report the cycle in file order: it reads as the workflow does.
            c.reverse();
            let first = c
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| **s)
                .map(|(k, _)| k)
                .unwrap_or(0);
            c.rotate_left(first);
            return Some(c);
        }
    }
    None
}
