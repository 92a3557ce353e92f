//! Validated workflow, group and route types. Holding one means it passed every check.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use indexmap::IndexMap;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::params::Params;
use super::source::{Node, Pos, Spanned};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    #[serde(with = "millis")]
    pub initial_backoff: Duration,
    #[serde(with = "millis")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

pub(crate) mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[derive(Clone, Debug)]
pub struct Stage {
    pub name: String,
    pub agent: String,
    /// Indexes of the stages this one waits for.
    pub after: Vec<usize>,
    pub spec: Spanned<Node>,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub approval: bool,
    /// The lease key, when the workflow names one instead of the agent's default.
    pub resource: Option<Spanned<Node>>,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    pub params: Params,
    pub stages: Vec<Stage>,
    pub file: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Failover,
    Failback,
    /// A rehearsal of the failover: agents check preconditions, nothing changes.
    Drill,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Failover, Action::Failback, Action::Drill];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failover => "failover",
            Action::Failback => "failback",
            Action::Drill => "drill",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action `{s}` (expected failover, failback or drill)"))
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Allow {
    pub slack_users: Vec<String>,
    pub slack_groups: Vec<String>,
    pub discord_roles: Vec<String>,
    pub discord_users: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub description: Option<String>,
    pub services: Vec<String>,
    /// Workflow name per action; a drill rehearses the failover workflow.
    pub workflows: IndexMap<Action, String>,
    pub channel: Option<String>,
    pub params: Params,
    pub allow: Allow,
    pub owners: Vec<String>,
}

impl Group {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    Alertmanager,
    Pagerduty,
    Grafana,
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteMode {
    Auto,
    Confirm,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    Group(String),
    /// Take the group from this alert label.
    Label(String),
}

#[derive(Clone, Debug)]
pub struct Route {
    pub name: String,
    pub source: AlertSource,
    pub matchers: IndexMap<String, String>,
    pub matchers_re: Vec<(String, Regex)>,
    pub target: RouteTarget,
    pub action: Action,
    pub mode: RouteMode,
    pub cooldown: Duration,
}
