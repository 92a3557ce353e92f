//! Everything under `workflows/`, read and checked as a whole: every `*.yaml` is a workflow
//! except `groups.yaml`, `routes.yaml` and `targets.yaml`. Every problem is collected with
//! its position; nothing with an error is ever started. The catalog also plans: which
//! stages a group runs for an action, with which parameters.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::alert_sources::{self, GenericSource};
use super::fields::io_diag;
use super::groups::{self, ChatKeys, Group};
use super::kinds::StageKinds;
use super::model::Action;
use super::params::Params;
use super::plan::{self, PlannedStage};
use super::raw::{RawGroups, RawRoutes, RawTargets, RawWorkflow};
use super::routes::{self, Route};
use super::source::{self, Diagnostic, Pos};
use super::targets::Targets;
use super::targets_file;
use super::versions;
use super::workflows::{self, Context, Workflow};

#[derive(Clone)]
pub struct Catalog {
    pub workflows: IndexMap<String, Workflow>,
    pub groups: IndexMap<String, Group>,
    pub routes: Vec<Route>,
    /// Generic webhook sources (`sources:` in routes.yaml).
    pub sources: Vec<GenericSource>,
    routes_file: Option<PathBuf>,
    groups_file: Option<PathBuf>,
    pub targets: Targets,
    /// Where an evacuation's one card goes, by chat platform (`slack`, `discord`,
    /// `mattermost`): groups.yaml's `evacuation_channel`. Without one, the first group of
    /// the evacuation with a standing channel there has it.
    pub evacuation_channel: IndexMap<String, String>,
    pub files: usize,
    /// The agent kinds the catalog was checked against, which planning consults again.
    kinds: Arc<dyn StageKinds>,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("workflows", &self.workflows.keys().collect::<Vec<_>>())
            .field("groups", &self.groups.keys().collect::<Vec<_>>())
            .field("routes", &self.routes.len())
            .field("targets", &self.targets.len())
            .finish()
    }
}

/// The stages a run of a group executes, with the parameters in force.
#[derive(Clone, Debug)]
pub struct Plan {
    pub workflow: String,
    pub params: Params,
    pub stages: Vec<PlannedStage>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("unknown group `{group}`")]
    UnknownGroup { group: String, known: Vec<String> },
    #[error("group `{group}` has no {action} workflow")]
    NoWorkflow { group: String, action: Action },
    #[error("{}", .0.join("; "))]
    BadParams(Vec<String>),
}

impl PlanError {
    /// The error with what helps a person at a terminal: the groups there are, one
    /// problem per line.
    pub fn explained(&self) -> String {
        match self {
            PlanError::UnknownGroup { group, known } => {
                format!("unknown group `{group}` (groups: {})", known.join(", "))
            }
            PlanError::BadParams(problems) => problems.join("\n"),
            other => other.to_string(),
        }
    }
}

struct File {
    path: PathBuf,
    text: String,
}

impl Catalog {
    /// What a run of `workflow` that executes `stages` uses, by hash.
    pub fn versions(&self, workflow: &str, stages: &[PlannedStage]) -> versions::Versions {
        versions::of(self.workflows.get(workflow), &self.targets, stages)
    }

    /// Loads a directory, or a single file when `path` names one, checking every stage
    /// against `kinds`.
    pub fn load(path: &Path, kinds: Arc<dyn StageKinds>) -> Result<Catalog, Vec<Diagnostic>> {
        let files = if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| vec![io_diag(path, &e)])?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mut errors = Vec::new();
        let mut catalog = Catalog {
            workflows: IndexMap::new(),
            groups: IndexMap::new(),
            routes: Vec::new(),
            sources: Vec::new(),
            routes_file: None,
            groups_file: None,
            targets: Targets::default(),
            evacuation_channel: IndexMap::new(),
            files: files.len(),
            kinds,
        };
        let (mut groups_file, mut routes_file, mut targets_file) = (None, None, None);
        let mut workflow_files = Vec::new();
        for path in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(io_diag(&path, &e));
                    continue;
                }
            };
            let file = File { path, text };
            match file.path.file_stem().and_then(|s| s.to_str()) {
                Some("groups") => groups_file = Some(file),
                Some("routes") => routes_file = Some(file),
                Some("targets") => targets_file = Some(file),
                _ => workflow_files.push(file),
            }
        }
        // Targets first: stages are checked against them. A targets file with errors is
        // reported alone, not again as every stage that names one of its targets.
        if let Some(f) = targets_file {
            let before = errors.len();
            match source::parse::<RawTargets>(&f.path, &f.text) {
                Ok(raw) => {
                    let targets =
                        targets_file::check(&f.path, raw, catalog.kinds.as_ref(), &mut errors);
                    if errors.len() == before {
                        catalog.targets = targets;
                    }
                }
                Err(d) => errors.push(d),
            }
        }
        let kinds = catalog.kinds.clone();
        let cx = Context {
            kinds: kinds.as_ref(),
            targets: &catalog.targets,
        };
        for f in workflow_files {
            let raw = match source::parse::<RawWorkflow>(&f.path, &f.text) {
                Ok(raw) => raw,
                Err(d) => {
                    errors.push(d);
                    continue;
                }
            };
            let name_pos = Pos::of(&raw.name);
            let Some(mut wf) = workflows::check(&f.path, raw, &cx, &mut errors) else {
                continue;
            };
            wf.digest = versions::digest(f.text.as_bytes());
            if let Some(first) = catalog.workflows.get(&wf.name) {
                errors.push(name_pos.diag(
                    &f.path,
                    format!(
                        "workflow `{}` is also defined in {}",
                        wf.name,
                        first.file.display()
                    ),
                ));
            } else {
                catalog.workflows.insert(wf.name.clone(), wf);
            }
        }
        // Cross-file references are checked only when the whole directory is read.
        let whole = path.is_dir();
        if let Some(f) = groups_file {
            match source::parse::<RawGroups>(&f.path, &f.text) {
                Ok(mut raw) => {
                    catalog.evacuation_channel = groups::evacuation_channel(
                        &f.path,
                        std::mem::take(&mut raw.evacuation_channel),
                        &mut errors,
                    );
                    catalog.groups = groups::check(
                        &f.path,
                        raw,
                        whole.then_some(&catalog.workflows),
                        &cx,
                        &mut errors,
                    );
                    catalog.groups_file = Some(f.path.clone());
                }
                Err(d) => errors.push(d),
            }
        }
        if let Some(f) = routes_file {
            match source::parse::<RawRoutes>(&f.path, &f.text) {
                Ok(raw) => {
                    catalog.sources = alert_sources::check(&f.path, raw.sources, &mut errors);
                    catalog.routes = routes::check(
                        &f.path,
                        raw.routes,
                        whole.then_some(&catalog.groups),
                        &mut errors,
                    );
                    catalog.routes_file = Some(f.path.clone());
                }
                Err(d) => errors.push(d),
            }
        }
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(errors)
        }
    }

    /// Checks that every route's `source` is one there is: `builtin` (the senders
    /// Lifeboat knows by code) or a generic source of routes.yaml, whose names must not
    /// take a built-in one's.
    pub fn check_sources(&self, builtin: &[&str]) -> Result<(), Vec<Diagnostic>> {
        let Some(file) = &self.routes_file else {
            return Ok(());
        };
        let mut errors = Vec::new();
        for s in &self.sources {
            if builtin.contains(&s.name.as_str()) {
                errors.push(s.pos.diag(
                    file,
                    format!("source `{}`: the name is a built-in source's", s.name),
                ));
            }
        }
        let mut known: Vec<&str> = builtin.to_vec();
        for s in &self.sources {
            if !known.contains(&s.name.as_str()) {
                known.push(&s.name);
            }
        }
        for r in &self.routes {
            if let (Some(name), Some(pos)) = (&r.source, r.source_pos)
                && !known.contains(&name.as_str())
            {
                errors.push(pos.diag(
                    file,
                    format!(
                        "route `{}`: unknown source `{name}` ({} or any)",
                        r.name,
                        known.join(", ")
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Checks the keys groups give chat platforms (channels, `allow` lists, `owners`,
    /// `people`) against the platforms there are.
    pub fn check_chat(&self, platforms: &[ChatKeys]) -> Result<(), Vec<Diagnostic>> {
        let Some(file) = &self.groups_file else {
            return Ok(());
        };
        let errors = groups::check_chat(file, &self.groups, platforms);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Warnings for valid files that leave a door open: each group whose `allow` names no
    /// API tokens, so every full token may act on it.
    pub fn warnings(&self) -> Vec<String> {
        let file = self.groups_file.clone().unwrap_or_default();
        self.groups
            .values()
            .filter(|g| g.allowed("api").is_empty())
            .map(|g| {
                format!(
                    "warning: {}:{}:{}: group `{}` has no `allow.api`: every API token that is not read-only may act on it",
                    file.display(),
                    g.pos.line,
                    g.pos.column,
                    g.name
                )
            })
            .collect()
    }

    /// `ok: …`, the line `lifeboat validate` prints for a clean directory.
    pub fn summary(&self) -> String {
        let stages: usize = self.workflows.values().map(|w| w.stages.len()).sum();
        let targets = match self.targets.file {
            Some(_) => format!(", {} targets", self.targets.len()),
            None => String::new(),
        };
        format!(
            "ok: {} workflows ({} stages), {} groups, {} routes{targets} in {} files",
            self.workflows.len(),
            stages,
            self.groups.len(),
            self.routes.len(),
            self.files
        )
    }

    /// The budgets a stage of `agent` with `spec` counts against.
    pub fn budgets_of(&self, agent: &str, spec: &serde_json::Value) -> Vec<super::limits::Budget> {
        let cx = Context {
            kinds: self.kinds.as_ref(),
            targets: &self.targets,
        };
        plan::budgets(&cx, agent, spec)
    }

    /// The lease key of a stage of `agent` with `spec`, when the stage names none.
    pub fn resource_of(&self, agent: &str, spec: &serde_json::Value) -> Option<String> {
        self.kinds.resource(agent, spec)
    }

    /// The stages a group runs for an action, with the workflow's parameters overridden by
    /// the group's and then by `overrides`.
    pub fn plan_for(
        &self,
        group: &str,
        action: Action,
        overrides: &Params,
    ) -> Result<Plan, PlanError> {
        let g = self
            .groups
            .get(group)
            .ok_or_else(|| PlanError::UnknownGroup {
                group: group.to_string(),
                known: self.groups.keys().cloned().collect(),
            })?;
        let no_workflow = || PlanError::NoWorkflow {
            group: group.to_string(),
            action,
        };
        let name = g.workflow_for(action).ok_or_else(no_workflow)?;
        let workflow = self.workflows.get(name).ok_or_else(no_workflow)?;
        let params = workflow
            .params_with(&[&g.params, overrides])
            .map_err(|e| PlanError::BadParams(vec![e]))?;
        let cx = Context {
            kinds: self.kinds.as_ref(),
            targets: &self.targets,
        };
        let mut stages = plan::plan(workflow, &params, &cx).map_err(|errors| {
            PlanError::BadParams(errors.iter().map(|e| e.to_string()).collect())
        })?;
        // Any stage may stop at a gate: planned, or raised by its agent (data loss).
        for s in stages.iter_mut() {
            s.approvals = g.approvals;
        }
        Ok(Plan {
            workflow: workflow.name.clone(),
            params,
            stages,
        })
    }
}
