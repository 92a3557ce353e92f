//! The files as serde reads them, every value with its position. The checks in
//! `workflows`, `groups`, `routes` and `targets` turn these into the validated types.

use indexmap::IndexMap;
use serde::Deserialize;

use super::source::{Node, OrderedMap, Spanned};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkflow {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub params: OrderedMap<Spanned<Node>>,
    /// `None` for `stages:` with nothing under it, reported as empty (not as a parse error).
    pub stages: Spanned<Option<OrderedMap<Spanned<RawStage>>>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    /// Given by the template when the stage `uses` one.
    #[serde(default)]
    pub agent: Option<Spanned<String>>,
    /// A pre-baked stage (`templates`) whose fields this stage's override.
    #[serde(default)]
    pub uses: Option<Spanned<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub after: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub spec: Option<Spanned<Node>>,
    #[serde(default)]
    pub retry: Option<RawRetry>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub approval: Option<Spanned<Node>>,
    #[serde(default)]
    pub resource: Option<Spanned<Node>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    #[serde(default)]
    pub max_attempts: Option<Spanned<u32>>,
    #[serde(default)]
    pub initial_backoff: Option<Spanned<String>>,
    #[serde(default)]
    pub max_backoff: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroups {
    pub groups: OrderedMap<Spanned<RawGroup>>,
    /// Where an evacuation's one card goes on each chat platform: `{ slack: C0DR, … }`.
    #[serde(default)]
    pub evacuation_channel: OrderedMap<Spanned<String>>,
}

/// A group. Each chat platform owns some of its keys (`channel` and `slack_…` are
/// Slack's, `discord_…` Discord's): a platform's channel is a key of the group's own,
/// gathered in `chat`; its lists are keys of `allow`, `owners` and each of `people`. The
/// platforms check their keys once the file is read (`Catalog::check_chat`).
#[derive(Deserialize)]
pub struct RawGroup {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub services: Vec<String>,
    pub workflows: Spanned<OrderedMap<Spanned<String>>>,
    #[serde(default)]
    pub params: OrderedMap<Spanned<Node>>,
    /// Who may run it from chat: `slack_users`, `slack_groups`, `discord_roles`, …
    #[serde(default)]
    pub allow: OrderedMap<Vec<String>>,
    /// People invited to every incident, by platform: `{ slack: [U1], discord: ["42"] }`.
    #[serde(default)]
    pub owners: OrderedMap<Vec<String>>,
    #[serde(default)]
    pub approvals: Option<Spanned<i64>>,
    /// One person's ids on each platform (and `api`, `terminal`), so that their presses
    /// count once.
    #[serde(default)]
    pub people: OrderedMap<Spanned<OrderedMap<String>>>,
    /// `{ every: 6h }` or `{ cron: "0 3 * * *" }`: a dry run of the failover on a schedule.
    #[serde(default)]
    pub drill: Option<Spanned<RawDrill>>,
    /// `{ rto: 15m, rpo: 30s }`: what a failover of the group should take and may lose.
    #[serde(default)]
    pub objectives: Option<Spanned<RawObjectives>>,
    /// Groups that must have finished the same action first when they move together.
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    /// Every other key: a platform's channel (`channel`, `discord_channel`, …).
    #[serde(flatten)]
    pub chat: IndexMap<String, Node>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrill {
    #[serde(default)]
    pub every: Option<Spanned<String>>,
    #[serde(default)]
    pub cron: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjectives {
    #[serde(default)]
    pub rto: Option<Spanned<String>>,
    #[serde(default)]
    pub rpo: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutes {
    #[serde(default)]
    pub sources: Vec<Spanned<super::alert_sources::RawSource>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Spanned<String>,
    #[serde(default)]
    pub source: Option<Spanned<String>>,
    #[serde(default, rename = "match")]
    pub matchers: IndexMap<String, String>,
    #[serde(default)]
    pub match_re: OrderedMap<Spanned<String>>,
    #[serde(default)]
    pub group: Option<Spanned<String>>,
    #[serde(default)]
    pub group_label: Option<Spanned<String>>,
    #[serde(default)]
    pub action: Option<Spanned<String>>,
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    #[serde(default)]
    pub cooldown: Option<Spanned<String>>,
    #[serde(default)]
    pub delay: Option<Spanned<String>>,
    #[serde(default)]
    pub starts_per_minute: Option<Spanned<String>>,
}

/// `targets.yaml`: where each logical name a workflow uses lives, and which provider
/// drives it. A target's fields other than `provider` belong to its provider.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTargets {
    #[serde(default)]
    pub databases: OrderedMap<Spanned<Node>>,
    #[serde(default)]
    pub clusters: OrderedMap<Spanned<Node>>,
    #[serde(default)]
    pub endpoints: OrderedMap<Spanned<Node>>,
    pub limits: Option<Spanned<Node>>,
}
