//! Triggers: who or what asked for which run. Every surface (API, chat, alerts, the CLI and
//! the demo) builds a `Trigger` and goes through `start`, so authorisation and the audit
//! trail are the same whichever way a run begins.

use std::fmt;

use crate::orchestrator::state::Run;
use crate::orchestrator::{CreateRunError, NewRun, Orchestrator};
use crate::workflow::{Action, Group, Params};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// An API token, by name.
    Api(String),
    Chat {
        platform: String,
        user: String,
        groups: Vec<String>,
    },
    /// An alert route, by name.
    Alert(String),
    /// Someone at this machine's terminal.
    Terminal(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Api(name) => write!(f, "api:{name}"),
            Actor::Chat { platform, user, .. } => write!(f, "{platform}:{user}"),
            Actor::Alert(route) => write!(f, "alert:{route}"),
            Actor::Terminal(user) => write!(f, "cli:{user}"),
        }
    }
}

impl Actor {
    pub fn terminal() -> Actor {
        Actor::Terminal(std::env::var("USER").unwrap_or_else(|_| "operator".into()))
    }
}

#[derive(Clone, Debug)]
pub struct Trigger {
    pub actor: Actor,
    pub group: String,
    pub action: Action,
    pub dry_run: bool,
    pub reason: Option<String>,
    pub params: Params,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Create(#[from] CreateRunError),
}

/// Who may start runs of a group. API tokens, alert routes and the local terminal are
/// trusted by configuration; chat users must be on the group's `allow` lists.
pub fn authorize(group: &Group, actor: &Actor) -> Result<(), String> {
    let Actor::Chat {
        platform,
        user,
        groups,
    } = actor
    else {
        return Ok(());
    };
    let allow = &group.allow;
    let allowed = match platform.as_str() {
        "slack" => {
            allow.slack_users.contains(user)
                || groups.iter().any(|g| allow.slack_groups.contains(g))
        }
        "discord" => {
            allow.discord_users.contains(user)
                || groups.iter().any(|g| allow.discord_roles.contains(g))
        }
        _ => false,
    };
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
        authorize(group, &t.actor).map_err(StartError::Forbidden)?;
    }
    Ok(orchestrator
        .create(NewRun {
            group: t.group,
            action: t.action,
            dry_run: t.dry_run,
            reason: t.reason,
            params: t.params,
            requested_by: t.actor.to_string(),
        })
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::model::Allow;

    fn group() -> Group {
        Group {
            name: "petstore".into(),
            description: None,
            services: vec![],
            workflows: Default::default(),
            channel: None,
            params: Default::default(),
            allow: Allow {
                slack_users: vec!["U1".into()],
                slack_groups: vec!["S0SRE".into()],
                discord_roles: vec!["123".into()],
                discord_users: vec![],
            },
            owners: vec![],
        }
    }

    fn chat(platform: &str, user: &str, groups: &[&str]) -> Actor {
        Actor::Chat {
            platform: platform.into(),
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn chat_users_need_the_allow_list_and_others_are_trusted() {
        let g = group();
        assert!(authorize(&g, &chat("slack", "U1", &[])).is_ok());
        assert!(authorize(&g, &chat("slack", "U2", &["S0SRE"])).is_ok());
        assert!(authorize(&g, &chat("discord", "99", &["123"])).is_ok());
        let refused = authorize(&g, &chat("slack", "U2", &["S0DEV"])).expect_err("not allowed");
        assert_eq!(
            refused,
            "slack:U2 may not run DR actions for group `petstore`"
        );
        assert!(
            authorize(&g, &chat("discord", "U1", &[])).is_err(),
            "a Slack id means nothing on Discord"
        );
        assert!(authorize(&g, &Actor::Api("ops".into())).is_ok());
        assert!(authorize(&g, &Actor::Alert("route".into())).is_ok());
    }
}
