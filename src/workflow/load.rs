//! Reading `workflows/`: every `*.yaml` is a workflow except `groups.yaml` and `routes.yaml`.
//! Every problem is collected with its position; nothing with an error is ever started.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::model::*;
use super::params::{self, Params};
use super::source::{self, Diagnostic, Node, OrderedMap, Pos, Spanned};
use crate::agents::specs;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    params: OrderedMap<Spanned<Node>>,
    /// `None` for `stages:` with nothing under it, reported as empty (not as a parse error).
    stages: Spanned<Option<OrderedMap<Spanned<RawStage>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    agent: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    after: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    spec: Option<Spanned<Node>>,
    #[serde(default)]
    retry: Option<RawRetry>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    approval: Option<Spanned<Node>>,
    #[serde(default)]
    resource: Option<Spanned<Node>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default)]
    max_attempts: Option<Spanned<u32>>,
    #[serde(default)]
    initial_backoff: Option<Spanned<String>>,
    #[serde(default)]
    max_backoff: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroups {
    groups: OrderedMap<Spanned<RawGroup>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    services: Vec<String>,
    workflows: Spanned<OrderedMap<Spanned<String>>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    params: OrderedMap<Spanned<Node>>,
    #[serde(default)]
    allow: Option<RawAllow>,
    #[serde(default)]
    owners: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    #[serde(default)]
    slack_users: Vec<String>,
    #[serde(default)]
    slack_groups: Vec<String>,
    #[serde(default)]
    discord_roles: Vec<String>,
    #[serde(default)]
    discord_users: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    routes: Vec<Spanned<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Spanned<String>,
    #[serde(default)]
    source: Option<Spanned<String>>,
    #[serde(default, rename = "match")]
    matchers: IndexMap<String, String>,
    #[serde(default)]
    match_re: OrderedMap<Spanned<String>>,
    #[serde(default)]
    group: Option<Spanned<String>>,
    #[serde(default)]
    group_label: Option<Spanned<String>>,
    #[serde(default)]
    action: Option<Spanned<String>>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    cooldown: Option<Spanned<String>>,
}

/// Everything under `workflows/`, checked as a whole.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub workflows: IndexMap<String, Workflow>,
    pub groups: IndexMap<String, Group>,
    pub routes: Vec<Route>,
    pub files: usize,
}

impl Catalog {
    /// Loads a directory, or a single file when `path` names one.
    pub fn load(path: &Path) -> Result<Catalog, Vec<Diagnostic>> {
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
            files: files.len(),
            ..Catalog::default()
        };
        let mut groups_file = None;
        let mut routes_file = None;
        for file in &files {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(io_diag(file, &e));
                    continue;
                }
            };
            match file.file_stem().and_then(|s| s.to_str()) {
                Some("groups") => groups_file = Some((file.clone(), text)),
                Some("routes") => routes_file = Some((file.clone(), text)),
                _ => match source::parse::<RawWorkflow>(file, &text) {
                    Ok(raw) => {
                        let name_pos = Pos::of(&raw.name);
                        if let Some(wf) = workflow(file, raw, &mut errors) {
                            if let Some(first) = catalog.workflows.get(&wf.name) {
                                errors.push(name_pos.diag(
                                    file,
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
                    }
                    Err(d) => errors.push(d),
                },
            }
        }
        // Cross-file references are checked only when the whole directory is read.
        let whole = path.is_dir();
        if let Some((file, text)) = groups_file {
            match source::parse::<RawGroups>(&file, &text) {
                Ok(raw) => {
                    catalog.groups =
                        groups(&file, raw, whole.then_some(&catalog.workflows), &mut errors)
                }
                Err(d) => errors.push(d),
            }
        }
        if let Some((file, text)) = routes_file {
            match source::parse::<RawRoutes>(&file, &text) {
                Ok(raw) => {
                    catalog.routes =
                        routes(&file, raw, whole.then_some(&catalog.groups), &mut errors)
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

    pub fn summary(&self) -> String {
        let stages: usize = self.workflows.values().map(|w| w.stages.len()).sum();
        format!(
            "ok: {} workflows ({} stages), {} groups, {} routes in {} files",
            self.workflows.len(),
            stages,
            self.groups.len(),
            self.routes.len(),
            self.files
        )
    }
}

fn io_diag(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: 1,
        column: 1,
        message: format!("cannot read: {e}"),
    }
}

fn duration_of(file: &Path, s: &Spanned<String>, errors: &mut Vec<Diagnostic>) -> Option<Duration> {
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

fn param_map(file: &Path, raw: &OrderedMap<Spanned<Node>>, errors: &mut Vec<Diagnostic>) -> Params {
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

fn workflow(file: &Path, raw: RawWorkflow, errors: &mut Vec<Diagnostic>) -> Option<Workflow> {
    let before = errors.len();
    let params = param_map(file, &raw.params, errors);
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
        let st = &raw_stage.value;
        let agent = st.agent.value.as_str();
        if !specs::KINDS.contains(&agent) {
            errors.push(Pos::of(&st.agent).diag(
                file,
                format!(
                    "stage `{}`: unknown agent `{agent}` (known: {})",
                    name.value,
                    specs::KINDS.join(", ")
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
                .and_then(|d| duration_of(file, d, errors))
            {
                retry.initial_backoff = d;
            }
            if let Some(d) = r
                .max_backoff
                .as_ref()
                .and_then(|d| duration_of(file, d, errors))
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
            .and_then(|t| duration_of(file, t, errors))
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
            Spanned::new(Node::Map(Vec::new()), st.agent.referenced, st.agent.defined)
        });
        if specs::KINDS.contains(&agent) {
            check_spec(file, &name.value, agent, &spec, &params, errors);
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
            approval,
            resource: st.resource.clone(),
            pos: Pos::of(name),
        });
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
    (errors.len() == before).then(|| Workflow {
        name: raw.name.value,
        description: raw.description,
        params,
        stages,
        file: file.to_path_buf(),
    })
}

fn describe(node: &Node) -> String {
    match node {
        Node::Str(s) => format!("{s:?}"),
        other => other.kind().to_string(),
    }
}

/// Resolves the spec with the workflow's defaults and asks the agent whether it accepts it.
fn check_spec(
    file: &Path,
    stage: &str,
    agent: &str,
    spec: &Spanned<Node>,
    params: &Params,
    errors: &mut Vec<Diagnostic>,
) {
    let before = errors.len();
    let value = params::resolve(spec, params, file, errors);
    if errors.len() != before {
        return;
    }
    if let Err(e) = specs::check(agent, &value) {
        let at = Node::locate(spec, &e.path);
        let field = e
            .path
            .iter()
            .map(|s| match s {
                source::PathSegment::Key(k) => k.clone(),
                source::PathSegment::Index(i) => format!("[{i}]"),
            })
            .collect::<Vec<_>>()
            .join(".");
        let field = if field.is_empty() {
            String::new()
        } else {
            format!(" at `{field}`")
        };
        errors.push(Pos::of(at).diag(
            file,
            format!(
                "stage `{stage}`: {agent} spec rejected{field}: {}",
                e.message
            ),
        ));
    }
}

/// A cycle as stage indexes in order, if the `after` edges have one.
pub(crate) fn find_cycle(stages: &[Stage]) -> Option<Vec<usize>> {
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

fn groups(
    file: &Path,
    raw: RawGroups,
    workflows: Option<&IndexMap<String, Workflow>>,
    errors: &mut Vec<Diagnostic>,
) -> IndexMap<String, Group> {
    let mut out = IndexMap::new();
    for (name, g) in raw.groups.0 {
        let g = g.value;
        let mut map = IndexMap::new();
        for (action, wf) in g.workflows.value.iter() {
            match action.value.parse::<Action>() {
                Ok(a) => {
                    if let Some(known) = workflows
                        && !known.contains_key(&wf.value)
                    {
                        errors.push(Pos::of(wf).diag(
                            file,
                            format!(
                                "group `{}`: {} workflow `{}` is not defined in any workflow file",
                                name.value, a, wf.value
                            ),
                        ));
                    }
                    map.insert(a, wf.value.clone());
                }
                Err(e) => {
                    errors.push(Pos::of(action).diag(file, format!("group `{}`: {e}", name.value)))
                }
            }
        }
        if !map.contains_key(&Action::Failover) {
            errors.push(Pos::of(&g.workflows).diag(
                file,
                format!("group `{}` has no failover workflow", name.value),
            ));
        }
        let params = param_map(file, &g.params, errors);
        // Each of the group's workflows must take its params, and still plan with them.
        if let Some(known) = workflows {
            for (action, wf) in map.iter().filter_map(|(a, w)| known.get(w).map(|w| (a, w))) {
                let unknown: Vec<_> = g
                    .params
                    .iter()
                    .filter(|(k, _)| !wf.params.contains_key(&k.value))
                    .collect();
                for (k, _) in &unknown {
                    errors.push(Pos::of(k).diag(
                        file,
                        format!(
                            "group `{}`: param `{}` is not a param of its {action} workflow `{}`",
                            name.value, k.value, wf.name
                        ),
                    ));
                }
                if !unknown.is_empty() {
                    continue;
                }
                if let Err(problems) =
                    wf.params_with(&[&params])
                        .map_err(|e| vec![e])
                        .and_then(|merged| {
                            wf.plan(&merged)
                                .map_err(|ds| ds.iter().map(|d| d.message.clone()).collect())
                        })
                {
                    for problem in problems {
                        errors.push(Pos::of(&name).diag(
                            file,
                            format!("group `{}`: with the group's params, {action} workflow `{}`: {problem}", name.value, wf.name),
                        ));
                    }
                }
            }
        }
        let allow = g.allow.unwrap_or_default();
        out.insert(
            name.value.clone(),
            Group {
                name: name.value,
                description: g.description,
                services: g.services,
                workflows: map,
                channel: g.channel,
                params,
                allow: Allow {
                    slack_users: allow.slack_users,
                    slack_groups: allow.slack_groups,
                    discord_roles: allow.discord_roles,
                    discord_users: allow.discord_users,
                },
                owners: g.owners,
            },
        );
    }
    out
}

fn routes(
    file: &Path,
    raw: RawRoutes,
    groups: Option<&IndexMap<String, Group>>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    for spanned in raw.routes {
        let route_pos = Pos::of(&spanned);
        let r = spanned.value;
        if out.iter().any(|o| o.name == r.name.value) {
            errors.push(
                Pos::of(&r.name).diag(file, format!("route `{}` is defined twice", r.name.value)),
            );
        }
        let source = match r.source.as_ref().map(|s| s.value.as_str()) {
            None | Some("any") => AlertSource::Any,
            Some("alertmanager") => AlertSource::Alertmanager,
            Some("pagerduty") => AlertSource::Pagerduty,
            Some("grafana") => AlertSource::Grafana,
            Some(other) => {
                errors.push(Pos::of(r.source.as_ref().unwrap_or(&r.name)).diag(
                    file,
                    format!("route `{}`: unknown source `{other}` (alertmanager, pagerduty, grafana or any)", r.name.value),
                ));
                AlertSource::Any
            }
        };
        let mut matchers_re = Vec::new();
        for (label, re) in r.match_re.iter() {
            match Regex::new(&format!("^(?:{})$", re.value)) {
                Ok(rx) => matchers_re.push((label.value.clone(), rx)),
                Err(e) => errors.push(Pos::of(re).diag(
                    file,
                    format!(
                        "route `{}`: bad regex for `{}`: {}",
                        r.name.value,
                        label.value,
                        e.to_string()
                            .lines()
                            .last()
                            .unwrap_or("invalid")
                            .trim_start_matches("error: ")
                    ),
                )),
            }
        }
        let target = match (&r.group, &r.group_label) {
            (Some(g), None) => {
                if let Some(known) = groups
                    && !known.contains_key(&g.value)
                {
                    errors.push(Pos::of(g).diag(
                        file,
                        format!("route `{}`: unknown group `{}`", r.name.value, g.value),
                    ));
                }
                RouteTarget::Group(g.value.clone())
            }
            (None, Some(l)) => RouteTarget::Label(l.value.clone()),
            _ => {
                errors.push(route_pos.diag(
                    file,
                    format!(
                        "route `{}` needs exactly one of `group` or `group_label`",
                        r.name.value
                    ),
                ));
                RouteTarget::Group(String::new())
            }
        };
        let action = match &r.action {
            None => Action::Failover,
            Some(a) => a.value.parse().unwrap_or_else(|e: String| {
                errors.push(Pos::of(a).diag(file, format!("route `{}`: {e}", r.name.value)));
                Action::Failover
            }),
        };
        let mode = match r.mode.as_ref().map(|m| m.value.as_str()) {
            None | Some("confirm") => RouteMode::Confirm,
            Some("auto") => RouteMode::Auto,
            Some(other) => {
                errors.push(Pos::of(r.mode.as_ref().unwrap_or(&r.name)).diag(
                    file,
                    format!(
                        "route `{}`: mode must be `auto` or `confirm`, not `{other}`",
                        r.name.value
                    ),
                ));
                RouteMode::Confirm
            }
        };
        let cooldown = r
            .cooldown
            .as_ref()
            .and_then(|c| duration_of(file, c, errors))
            .unwrap_or(Duration::from_secs(30 * 60));
        out.push(Route {
            name: r.name.value.clone(),
            source,
            matchers: r.matchers,
            matchers_re,
            target,
            action,
            mode,
            cooldown,
        });
    }
    out
}
