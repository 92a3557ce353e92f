//! Triggers: who or what asked for which run. Every surface (API, chat, alerts, the CLI and
//! the demo) builds a `Trigger` and goes through `start`, so authorisation and the audit
//! trail are the same whichever way a run begins.

use crate::domain::{Actor, Run};
use crate::orchestrator::{CreateRunError, NewRun, Orchestrator};
use crate::workflow::{Action, Group, Params};

#[derive(Clone, Debug)]
pub struct Trigger {
    pub actor: Actor,
    /// The chat user groups (Slack) or roles (Discord) the person holds: what a group's
    /// `allow` may name besides the person.
    pub roles: Vec<String>,
    pub group: String,
    pub action: Action,
    pub dry_run: bool,
    pub reason: Option<String>,
    pub params: Params,
    /// Start although no live agent serves a kind the run needs.
    pub force: bool,
}

impl Trigger {
    /// A trigger by `actor`, who holds no chat roles.
    pub fn new(actor: Actor, group: impl Into<String>, action: Action) -> Trigger {
        Trigger {
            actor,
            roles: Vec::new(),
            group: group.into(),
            action,
            dry_run: false,
            reason: None,
            params: Params::new(),
            force: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Create(#[from] CreateRunError),
}

/// Who may start runs of a group. Alert routes and the local terminal are trusted by
/// configuration; API tokens too, unless the group's `allow.api` names the ones it takes;
/// chat users must be on the group's `allow` lists, in person or through one of `roles`.
pub fn authorize(group: &Group, actor: &Actor, roles: &[String]) -> Result<(), String> {
    if let Actor::Api(token) = actor {
        // A group that names no tokens is open to every full token.
        let tokens = group.allowed("api");
        return if tokens.is_empty() || tokens.contains(token) {
            Ok(())
        } else {
            Err(format!(
                "API token `{token}` may not act on group `{}`: its `allow.api` names {}",
                group.name,
                tokens.join(", ")
            ))
        };
    }
    let Actor::Chat { platform, user } = actor else {
        return Ok(());
    };
    // A platform's lists are `{platform}_users` and its other `{platform}_…` keys
    // (`chat::ChatPlatform::keys`), so they are told apart here without knowing which
    // platforms there are.
    let users = format!("{platform}_users");
    let prefix = format!("{platform}_");
    let allowed = group.allowed(&users).contains(user)
        || group.allow.iter().any(|(key, list)| {
            key != &users && key.starts_with(&prefix) && roles.iter().any(|r| list.contains(r))
        });
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "{actor} may not run DR actions for group `{}`",
            group.name
        ))
    }
}

pub async fn start(orchestrator: &Orchestrator, t: Trigger) -> Result<Run, StartError> {
    if let Some(group) = orchestrator.catalog().groups.get(&t.group) {
        authorize(group, &t.actor, &t.roles).map_err(StartError::Forbidden)?;
    }
    Ok(orchestrator
        .create(NewRun {
            group: t.group,
            action: t.action,
            dry_run: t.dry_run,
            reason: t.reason,
            params: t.params,
            requested_by: t.actor,
            id: None,
            force: t.force,
        })
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Platform;

    fn group() -> Group {
        Group {
            name: "petstore".into(),
            pos: Default::default(),
            description: None,
            services: vec![],
            workflows: Default::default(),
            channels: Default::default(),
            params: Default::default(),
            allow: [
                ("slack_users", vec!["U1".to_string()]),
                ("slack_groups", vec!["S0SRE".to_string()]),
                ("discord_roles", vec!["123".to_string()]),
                ("discord_users", vec![]),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            owners: Default::default(),
            approvals: 1,
            people: Default::default(),
            drill: None,
            objectives: Default::default(),
            depends_on: Vec::new(),
            chat_keys: Vec::new(),
        }
    }

    const SLACK: Platform = Platform::from_static("slack");
    const DISCORD: Platform = Platform::from_static("discord");

    fn check(platform: Platform, user: &str, roles: &[&str]) -> Result<(), String> {
        let actor = Actor::Chat {
            platform,
            user: user.into(),
        };
        let roles: Vec<String> = roles.iter().map(|g| g.to_string()).collect();
        authorize(&group(), &actor, &roles)
    }

    #[test]
    fn chat_users_need_the_allow_list_and_others_are_trusted() {
        let g = group();
        assert!(check(SLACK, "U1", &[]).is_ok());
        assert!(check(SLACK, "U2", &["S0SRE"]).is_ok());
        assert!(check(DISCORD, "99", &["123"]).is_ok());
        let refused = check(SLACK, "U2", &["S0DEV"]).expect_err("not allowed");
        assert_eq!(
            refused,
            "slack:U2 may not run DR actions for group `petstore`"
        );
        assert!(
            check(DISCORD, "U1", &[]).is_err(),
            "a Slack id means nothing on Discord"
        );
        assert!(authorize(&g, &Actor::Api("ops".into()), &[]).is_ok());
        assert!(authorize(&g, &Actor::Alert("route".into()), &[]).is_ok());
    }
}
