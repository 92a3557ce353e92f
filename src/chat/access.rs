//! Who may do what from chat: the group's `allow` for the platform, in person or through a
//! user group (Slack) or role (Discord). A refusal is said plainly and recorded.

use super::context::ChatContext;
use super::people::{Requester, mention};
use crate::domain::{Actor, Platform, RunId};
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
    let allow = &group.allow;
    let (users, groups, how) = match who.platform {
        Platform::Slack => (
            &allow.slack_users,
            &allow.slack_groups,
            "`allow: { slack_users: [U012ABC], slack_groups: [S0SRE] }`",
        ),
        Platform::Discord => (
            &allow.discord_users,
            &allow.discord_roles,
            "`allow: { discord_users: [\"53908232506183680\"], discord_roles: [\"123\"] }`",
        ),
    };
    let refusal = if users.is_empty() && groups.is_empty() {
        format!(
            "Group `{}` cannot be run from {}: its `allow` in groups.yaml names no one there. \
             Add {how} to the group to let people run it.",
            group.name,
            platform_name(who.platform)
        )
    } else {
        let roles = who.membership.which(groups).await;
        match trigger::authorize(group, &actor, &roles) {
            Ok(()) => return Ok(Allowed { actor, roles }),
            Err(_) => format!(
                "{} may not do that: `{request}` needs someone in the `allow` list of group `{}`.",
                mention(&actor, Some(who.platform)),
                group.name
            ),
        }
    };
    let recorded = cx
        .store
        .record_refusal(&Refusal {
            actor: &actor,
            group: Some(&group.name),
            run,
            request,
            reason: &refusal,
        })
        .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, actor = %actor, "Could not record a refusal.");
    }
    tracing::info!(actor = %actor, group = %group.name, request, "Refused a chat request.");
    Err(refusal)
}

fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::Slack => "Slack",
        Platform::Discord => "Discord",
    }
}
