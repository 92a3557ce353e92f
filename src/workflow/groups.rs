//! `groups.yaml`: service groups dialed together, the workflow for each action, the
//! incident channel, group-level params, and who may run them from chat.

use std::path::Path;

use indexmap::IndexMap;

use super::drill::DrillSchedule;
use super::fields::param_map;
use super::model::Action;
use super::params::Params;
use super::plan;
use super::raw::RawGroups;
use super::source::{Diagnostic, Node, OrderedMap, Pos, Spanned};
use super::workflows::{Context, Workflow};

/// Who may run a group from chat: lists by the key each platform owns (`slack_users`,
/// `slack_groups`, `discord_users`, `discord_roles`, …).
pub type Allow = IndexMap<String, Vec<String>>;

/// People invited to every incident of a group, by their user id on each platform.
pub type Owners = IndexMap<String, Vec<String>>;

/// A person's ids by platform (`slack`, `discord`, …), `api` (a token's name) and
/// `terminal` (a login name).
pub type Person = IndexMap<String, String>;

#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    /// Where its name is written.
    pub pos: Pos,
    pub description: Option<String>,
    pub services: Vec<String>,
    /// Workflow name per action; a drill rehearses the failover workflow.
    pub workflows: IndexMap<Action, String>,
    /// Each platform's channel for the group, by the key the platform owns: `channel`
    /// (Slack's standing DR channel), `discord_channel` (where incident threads open), …
    pub channels: IndexMap<String, String>,
    pub params: Params,
    pub allow: Allow,
    pub owners: Owners,
    /// Different people needed at each gate; with 2 or more, the requester is not one.
    pub approvals: u8,
    /// People by name, with their id on each platform: one person whichever way they press.
    pub people: IndexMap<String, Person>,
    /// When the service drills the failover (a dry run through the real agents) by itself.
    pub drill: Option<DrillSchedule>,
    /// What a failover should take (`rto`) and may lose (`rpo`).
    pub objectives: Objectives,
    /// Groups that finish the same action first when groups move together (an
    /// evacuation): a shared database before the apps that use it.
    pub depends_on: Vec<String>,
    /// Where each key a chat platform should own is written, for `check_chat`.
    pub(crate) chat_keys: Vec<(ChatKey, String, Pos)>,
}

/// A group's recovery objectives; each is optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Objectives {
    pub rto: Option<std::time::Duration>,
    pub rpo: Option<std::time::Duration>,
}

/// Which kind of key a chat platform owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChatKey {
    Channel,
    Allow,
    Owners,
    Person,
}

/// The groups.yaml keys a chat platform owns.
#[derive(Clone, Copy, Debug)]
pub struct ChatKeys {
    /// Its name: the key of `owners` and of each of `people`.
    pub platform: &'static str,
    /// The group's channel there.
    pub channel: &'static str,
    /// `allow`'s list of people, and of the user groups (or roles, or teams) they are in.
    pub users: &'static str,
    pub groups: &'static str,
}

/// Most approvals a gate may ask for.
const MAX_APPROVALS: i64 = 5;

impl Group {
    /// The name `people` gives the holder of `id` on `platform` (`slack`, `discord`,
    /// `api`, `terminal`), if any.
    pub fn person(&self, platform: &str, id: &str) -> Option<&str> {
        self.people
            .iter()
            .find(|(_, p)| p.get(platform).map(String::as_str) == Some(id))
            .map(|(name, _)| name.as_str())
    }

    /// The group's channel under `key` (a platform's), if it names one.
    pub fn channel(&self, key: &str) -> Option<&str> {
        self.channels.get(key).map(String::as_str)
    }

    /// `allow`'s list under `key`; empty when it has none.
    pub fn allowed(&self, key: &str) -> &[String] {
        self.allow.get(key).map_or(&[], Vec::as_slice)
    }

    /// The owners to invite on `platform`.
    pub fn owners_on(&self, platform: &str) -> &[String] {
        self.owners.get(platform).map_or(&[], Vec::as_slice)
    }

    pub fn workflow_for(&self, action: Action) -> Option<&str> {
        let key = if action == Action::Drill {
            self.workflows
                .get(&Action::Drill)
                .or(self.workflows.get(&Action::Failover))
        } else {
            self.workflows.get(&action)
        };
        key.map(String::as_str)
    }
}

/// The chat platforms `evacuation_channel` may name.
const CHAT_PLATFORMS: [&str; 3] = ["slack", "discord", "mattermost"];

/// Reads `evacuation_channel`: a channel for each chat platform named.
pub(super) fn evacuation_channel(
    file: &Path,
    raw: OrderedMap<Spanned<String>>,
    errors: &mut Vec<Diagnostic>,
) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    for (platform, channel) in raw.0 {
        if !CHAT_PLATFORMS.contains(&platform.value.as_str()) {
            errors.push(Pos::of(&platform).diag(
                file,
                format!(
                    "evacuation_channel: unknown chat platform `{}` ({})",
                    platform.value,
                    CHAT_PLATFORMS.join(", ")
                ),
            ));
        } else if channel.value.trim().is_empty() {
            errors.push(Pos::of(&channel).diag(
                file,
                format!(
                    "evacuation_channel.{}: the channel is empty",
                    platform.value
                ),
            ));
        } else {
            out.insert(platform.value, channel.value);
        }
    }
    out
}

/// Checks every group; `workflows` (when the whole directory is read) are the workflows
/// the groups may name.
pub(super) fn check(
    file: &Path,
    raw: RawGroups,
    workflows: Option<&IndexMap<String, Workflow>>,
    cx: &Context<'_>,
    errors: &mut Vec<Diagnostic>,
) -> IndexMap<String, Group> {
    let mut out = IndexMap::new();
    let mut edges: Vec<(String, Vec<(String, Pos)>)> = Vec::new();
    for (name, g) in raw.groups.0 {
        let g = g.value;
        edges.push((
            name.value.clone(),
            g.depends_on
                .iter()
                .map(|d| (d.value.clone(), Pos::of(d)))
                .collect(),
        ));
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
                // Each value where it is written, against what the workflow declares.
                let mut unfit = false;
                for (k, v) in g.params.iter() {
                    let Some(value) = params.get(&k.value) else {
                        continue;
                    };
                    let fits = match wf.declared.get(&k.value) {
                        Some(d) => d.check(&k.value, value),
                        None => super::declared::scalar(&k.value, value),
                    };
                    if let Err(e) = fits {
                        unfit = true;
                        errors.push(Pos::of(v).diag(
                            file,
                            format!(
                                "group `{}`: {action} workflow `{}`: {e}",
                                name.value, wf.name
                            ),
                        ));
                    }
                }
                if unfit {
                    continue;
                }
                if let Err(problems) =
                    wf.params_with(&[&params])
                        .map_err(|e| vec![e])
                        .and_then(|merged| {
                            plan::plan(wf, &merged, cx)
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
        let approvals = match &g.approvals {
            None => 1,
            Some(n) if (1..=MAX_APPROVALS).contains(&n.value) => n.value as u8,
            Some(n) => {
                errors.push(Pos::of(n).diag(
                    file,
                    format!(
                        "group `{}`: approvals must be 1 to {MAX_APPROVALS}, not {}",
                        name.value, n.value
                    ),
                ));
                1
            }
        };
        let mut chat_keys = Vec::new();
        for (k, _) in g.allow.iter() {
            chat_keys.push((ChatKey::Allow, k.value.clone(), Pos::of(k)));
        }
        for (k, _) in g.owners.iter() {
            chat_keys.push((ChatKey::Owners, k.value.clone(), Pos::of(k)));
        }
        for (_, p) in g.people.iter() {
            for (k, _) in p.value.iter() {
                chat_keys.push((ChatKey::Person, k.value.clone(), Pos::of(k)));
            }
        }
        // Keys of the group's own have no position here: the group's is given.
        for key in g.chat.keys() {
            chat_keys.push((ChatKey::Channel, key.clone(), Pos::of(&name)));
        }
        let people = people(file, &name.value, g.people, errors);
        let drill = g.drill.and_then(|d| drill(file, &name.value, d, errors));
        let objectives = g
            .objectives
            .map(|o| objectives(file, &name.value, o.value, errors))
            .unwrap_or_default();
        let mut channels = IndexMap::new();
        for (key, value) in g.chat {
            match value {
                Node::Str(v) => {
                    channels.insert(key, v);
                }
                Node::Int(v) => {
                    channels.insert(key, v.to_string());
                }
                other => errors.push(Pos::of(&name).diag(
                    file,
                    format!(
                        "group `{}`: unknown key `{key}` (or a chat platform's channel given {}: it is one name or id)",
                        name.value,
                        other.kind()
                    ),
                )),
            }
        }
        out.insert(
            name.value.clone(),
            Group {
                pos: Pos::of(&name),
                name: name.value,
                description: g.description,
                services: g.services,
                workflows: map,
                channels,
                params,
                allow: g.allow.0.into_iter().map(|(k, v)| (k.value, v)).collect(),
                owners: g.owners.0.into_iter().map(|(k, v)| (k.value, v)).collect(),
                approvals,
                people,
                drill,
                objectives,
                depends_on: g.depends_on.into_iter().map(|d| d.value).collect(),
                chat_keys,
            },
        );
    }
    dependencies(file, &edges, errors);
    out
}

/// A group's `drill:`, one of `every` and `cron`, checked where it is written.
fn drill(
    file: &Path,
    group: &str,
    raw: Spanned<super::raw::RawDrill>,
    errors: &mut Vec<Diagnostic>,
) -> Option<DrillSchedule> {
    let pos = Pos::of(&raw);
    let parsed = match (raw.value.every, raw.value.cron) {
        (Some(every), None) => DrillSchedule::every(&every.value).map_err(|e| (Pos::of(&every), e)),
        (None, Some(cron)) => DrillSchedule::cron(&cron.value).map_err(|e| (Pos::of(&cron), e)),
        (Some(_), Some(_)) => Err((pos, "give `every` or `cron`, not both".to_string())),
        (None, None) => Err((pos, "give `every: 6h` or `cron: \"0 3 * * *\"`".to_string())),
    };
    parsed
        .map_err(|(at, e)| errors.push(at.diag(file, format!("group `{group}`: drill: {e}"))))
        .ok()
}

/// A group's `objectives:`, each a duration checked where it is written.
fn objectives(
    file: &Path,
    group: &str,
    raw: super::raw::RawObjectives,
    errors: &mut Vec<Diagnostic>,
) -> Objectives {
    let mut read = |key: &str, v: Option<Spanned<String>>| {
        let v = v?;
        humantime::parse_duration(v.value.trim())
            .map_err(|e| {
                errors.push(Pos::of(&v).diag(
                    file,
                    format!(
                        "group `{group}`: objectives: {key} `{}` is not a duration ({e}); write it like 15m or 30s",
                        v.value
                    ),
                ))
            })
            .ok()
    };
    Objectives {
        rto: read("rto", raw.rto),
        rpo: read("rpo", raw.rpo),
    }
}

/// A group's people; an id given to two people is an error, since approvals would count
/// it twice.
fn people(
    file: &Path,
    group: &str,
    raw: OrderedMap<Spanned<OrderedMap<String>>>,
    errors: &mut Vec<Diagnostic>,
) -> IndexMap<String, Person> {
    let mut out: IndexMap<String, Person> = IndexMap::new();
    for (name, p) in raw.0 {
        let pos = Pos::of(&p);
        let person: Person = p.value.0.into_iter().map(|(k, v)| (k.value, v)).collect();
        for (platform, id) in &person {
            let taken = out.iter().find(|(_, o)| o.get(platform) == Some(id));
            if let Some((other, _)) = taken {
                errors.push(pos.diag(
                    file,
                    format!(
                        "group `{group}`: {platform} id `{id}` is given to both `{other}` and `{}`",
                        name.value
                    ),
                ));
            }
        }
        out.insert(name.value, person);
    }
    out
}

/// Checks the keys each group gives chat platforms against the platforms there are.
/// Every `depends_on` names another group, and no group depends on itself through others:
/// each problem where the dependency is written.
fn dependencies(file: &Path, edges: &[(String, Vec<(String, Pos)>)], errors: &mut Vec<Diagnostic>) {
    let index: IndexMap<&str, usize> = edges
        .iter()
        .enumerate()
        .map(|(i, (g, _))| (g.as_str(), i))
        .collect();
    for (group, deps) in edges {
        for (dep, pos) in deps {
            if dep == group {
                errors.push(pos.diag(file, format!("group `{group}` depends on itself")));
            } else if !index.contains_key(dep.as_str()) {
                errors.push(pos.diag(
                    file,
                    format!(
                        "group `{group}` depends on `{dep}`, which is no group (groups: {})",
                        index.keys().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    // Depth first; a dependency met again while its own walk is open closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn walk(
        i: usize,
        edges: &[(String, Vec<(String, Pos)>)],
        index: &IndexMap<&str, usize>,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        found: &mut Vec<(Vec<usize>, Pos)>,
    ) {
        marks[i] = Mark::Open;
        path.push(i);
        for (dep, pos) in &edges[i].1 {
            let Some(&j) = index.get(dep.as_str()) else {
                continue;
            };
            if j == i {
                continue;
            }
            match marks[j] {
                Mark::New => walk(j, edges, index, marks, path, found),
                Mark::Open => {
                    let from = path.iter().position(|&k| k == j).unwrap_or(0);
                    found.push((path[from..].to_vec(), *pos));
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut found = Vec::new();
    for i in 0..edges.len() {
        if marks[i] == Mark::New {
            walk(i, edges, &index, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    for (cycle, pos) in found {
        let names: Vec<&str> = cycle.iter().map(|&k| edges[k].0.as_str()).collect();
        errors.push(pos.diag(
            file,
            format!(
                "groups depend on each other in a cycle: {} → {}",
                names.join(" → "),
                names[0]
            ),
        ));
    }
}

pub(super) fn check_chat(
    file: &Path,
    groups: &IndexMap<String, Group>,
    platforms: &[ChatKeys],
) -> Vec<Diagnostic> {
    let channels: Vec<&str> = platforms.iter().map(|p| p.channel).collect();
    let mut lists: Vec<&str> = platforms.iter().flat_map(|p| [p.users, p.groups]).collect();
    lists.push("api");
    let names: Vec<&str> = platforms.iter().map(|p| p.platform).collect();
    let mut ids = names.clone();
    ids.extend(["api", "terminal"]);
    let mut errors = Vec::new();
    for g in groups.values() {
        for (kind, key, pos) in &g.chat_keys {
            let (what, known) = match kind {
                ChatKey::Channel => ("key", &channels),
                ChatKey::Allow => ("`allow` list", &lists),
                ChatKey::Owners => ("`owners` platform", &names),
                ChatKey::Person => ("kind of id in `people`", &ids),
            };
            if !known.contains(&key.as_str()) {
                errors.push(pos.diag(
                    file,
                    format!(
                        "group `{}`: unknown {what} `{key}` ({})",
                        g.name,
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    errors
}
