//! Who may do what from chat: the group's `allow` lists the platform owns, in person or
//! through a user group (Slack), role (Discord) or team. A refusal is said plainly and recorded.

use super::context::ChatContext;
use super::people::{Requester, mention};
use crate::domain::{Actor, RunId};
use crate::store::Refusal;
use crate::trigger;
use crate::workflow::Group;

/// Someone allowed, with the user groups or roles that let them in.
pub struct Allowed {
    pub actor: Actor,
    pub roles: Vec<String>,
}

/// Checks that `who` may make `request` of `group`; `Err` is the reply that says why not,
/// after the refusal is recorded.
pub async fn check(
    cx: &ChatContext,
    who: &Requester,
    group: &Group,
    request: &str,
    run: Option<RunId>,
) -> Result<Allowed, String> {
    let actor = who.actor();
    let keys = who.platform.keys();
    let (users, groups) = (group.allowed(keys.users), group.allowed(keys.groups));
    let refusal = if users.is_empty() && groups.is_empty() {
        format!(
            "Group `{}` cannot be run from {}: its `allow` in groups.yaml names no one there. \
             Add {} to the group to let people run it.",
            group.name,
            who.platform.title(),
            who.platform.allow_example()
        )
    } else {
        let roles = who.membership.which(groups).await;
        match trigger::authorize(group, &actor, &roles) {
            Ok(()) => return Ok(Allowed { actor, roles }),
            Err(_) => format!(
                "{} may not do that: `{request}` needs someone in the `allow` list of group `{}`.",
                mention(&actor, who.platform),
                group.name
            ),
        }
    };
    Err(record(cx, &actor, Some(&group.name), run, request, refusal).await)
}

/// Checks that `who` is allowed in at least one group, for what only reads (`status`,
/// `runs`, `groups`, `plan`, `locks`, `agents`): which runs there are, who started them
/// and what the estate looks like is not for everyone in the workspace.
pub async fn check_any(cx: &ChatContext, who: &Requester, request: &str) -> Result<(), String> {
    let actor = who.actor();
    let keys = who.platform.keys();
    let groups = &cx.catalog().groups;
    let mut candidates: Vec<String> = Vec::new();
    for g in groups.values() {
        for c in g.allowed(keys.groups) {
            if !candidates.contains(c) {
                candidates.push(c.clone());
            }
        }
    }
    let roles = who.membership.which(&candidates).await;
    if groups
        .values()
        .any(|g| trigger::authorize(g, &actor, &roles).is_ok())
    {
        return Ok(());
    }
    let refusal = format!(
        "{} may not do that: `{request}` needs someone in the `allow` list of a group.",
        mention(&actor, who.platform)
    );
    Err(record(cx, &actor, None, None, request, refusal).await)
}

/// Checks that a request comes from a workspace or server this Lifeboat serves (`pins`,
/// from `SLACK_TEAM_IDS` or `DISCORD_GUILD_IDS`; empty serves every one): a bot
/// installed somewhere else is not a way in. `place` is what it is called ("Slack
/// workspace") and its id, if the request names one.
pub async fn pinned(
    cx: &ChatContext,
    actor: &Actor,
    place: (&str, Option<&str>),
    pins: &[String],
    request: &str,
) -> Result<(), String> {
    let (what, place) = place;
    if pins.is_empty() || place.is_some_and(|p| pins.iter().any(|pin| pin == p)) {
        return Ok(());
    }
    let refusal = format!(
        "This Lifeboat does not serve this {what} ({}); the request was refused and recorded.",
        place.unwrap_or("none named")
    );
    Err(record(cx, actor, None, None, request, refusal).await)
}

/// Records a refusal, for `GET /api/v1/refusals`; the reply that says it.
async fn record(
    cx: &ChatContext,
    actor: &Actor,
    group: Option<&str>,
    run: Option<RunId>,
    request: &str,
    refusal: String,
) -> String {
    let recorded = cx
        .store
        .record_refusal(&Refusal {
            actor,
            group,
            run,
            request,
            reason: &refusal,
        })
        .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, actor = %actor, "Could not record a refusal.");
    }
    tracing::info!(actor = %actor, group, request, "Refused a chat request.");
    refusal
}
