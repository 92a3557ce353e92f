//! `groups.yaml`: service groups dialed together, the workflow for each action, the
//! incident channel, group-level params, and who may run them from chat.

use std::path::Path;

use indexmap::IndexMap;

use super::fields::param_map;
use super::model::Action;
use super::params::Params;
use super::plan;
use super::raw::RawGroups;
use super::source::{Diagnostic, Pos};
use super::workflows::{Context, Workflow};

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Allow {
    pub slack_users: Vec<String>,
    pub slack_groups: Vec<String>,
    pub discord_roles: Vec<String>,
    pub discord_users: Vec<String>,
}

/// People invited to every incident of a group, by their user id on each platform.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Owners {
    pub slack: Vec<String>,
    pub discord: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub description: Option<String>,
    pub services: Vec<String>,
    /// Workflow name per action; a drill rehearses the failover workflow.
    pub workflows: IndexMap<Action, String>,
    /// Slack: the standing DR channel, told of every run.
    pub channel: Option<String>,
    /// Discord: the channel incident threads open in.
    pub discord_channel: Option<String>,
    pub params: Params,
    pub allow: Allow,
    pub owners: Owners,
    /// Different people needed at each gate; with 2 or more, the requester is not one.
    pub approvals: u8,
    /// People by name, with their id on each platform: one person whichever way they press.
    pub people: IndexMap<String, Person>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Person {
    pub slack: Option<String>,
    pub discord: Option<String>,
    pub api: Option<String>,
    pub terminal: Option<String>,
}

/// Most approvals a gate may ask for.
const MAX_APPROVALS: i64 = 5;

impl Group {
    /// The name `people` gives the holder of `id` on `platform` (`slack`, `discord`,
    /// `api`, `terminal`), if any.
    pub fn person(&self, platform: &str, id: &str) -> Option<&str> {
        self.people
            .iter()
            .find(|(_, p)| {
                match platform {
                    "slack" => &p.slack,
                    "discord" => &p.discord,
                    "api" => &p.api,
                    "terminal" => &p.terminal,
                    _ => return false,
                }
                .as_deref()
                    == Some(id)
            })
            .map(|(name, _)| name.as_str())
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
        let allow = g.allow.unwrap_or_default();
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
        let people = people(file, &name.value, g.people, errors);
        out.insert(
            name.value.clone(),
            Group {
                name: name.value,
                description: g.description,
                services: g.services,
                workflows: map,
                channel: g.channel,
                discord_channel: g.discord_channel,
                params,
                allow: Allow {
                    slack_users: allow.slack_users,
                    slack_groups: allow.slack_groups,
                    discord_roles: allow.discord_roles,
                    discord_users: allow.discord_users,
                },
                owners: {
                    let o = g.owners.unwrap_or_default();
                    Owners {
                        slack: o.slack,
                        discord: o.discord,
                    }
                },
                approvals,
                people,
            },
        );
    }
    out
}

/// A group's people; an id given to two people is an error, since approvals would count
/// it twice.
fn people(
    file: &Path,
    group: &str,
    raw: super::source::OrderedMap<super::source::Spanned<super::raw::RawPerson>>,
    errors: &mut Vec<Diagnostic>,
) -> IndexMap<String, Person> {
    let mut out: IndexMap<String, Person> = IndexMap::new();
    for (name, p) in raw.0 {
        let pos = Pos::of(&p);
        let p = p.value;
        let person = Person {
            slack: p.slack,
            discord: p.discord,
            api: p.api,
            terminal: p.terminal,
        };
        for (platform, id) in [
            ("slack", &person.slack),
            ("discord", &person.discord),
            ("api", &person.api),
            ("terminal", &person.terminal),
        ] {
            let Some(id) = id else { continue };
            let taken = out.iter().find(|(_, o)| {
                match platform {
                    "slack" => &o.slack,
                    "discord" => &o.discord,
                    "api" => &o.api,
                    _ => &o.terminal,
                }
                .as_ref()
                    == Some(id)
            });
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
