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
