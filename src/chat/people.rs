//! Who is asking, and what they belong to. Slack resolves user-group membership through
//! its API; Discord sends a member's roles with each interaction.

use async_trait::async_trait;

use crate::domain::{Actor, Platform};

/// Which of a group's allowed user groups (Slack) or roles (Discord) a person is in.
#[async_trait]
pub trait Membership: Send + Sync {
    async fn which(&self, candidates: &[String]) -> Vec<String>;
}

/// Roles known up front, as a Discord interaction carries them.
pub struct Roles(pub Vec<String>);

#[async_trait]
impl Membership for Roles {
    async fn which(&self, candidates: &[String]) -> Vec<String> {
        candidates
            .iter()
            .filter(|c| self.0.contains(c))
            .cloned()
            .collect()
    }
}

/// A person asking from chat.
pub struct Requester {
    pub platform: Platform,
    pub user: String,
    /// Where they asked.
    pub channel: String,
    pub membership: Box<dyn Membership>,
}

impl Requester {
    pub fn actor(&self) -> Actor {
        Actor::Chat {
            platform: self.platform,
            user: self.user.clone(),
        }
    }
}

/// How an actor is named on a platform: a mention there for one of its people, the
/// actor's name otherwise.
pub fn mention(actor: &Actor, on: Option<Platform>) -> String {
    match actor {
        Actor::Chat { platform, user } if Some(*platform) == on => format!("<@{user}>"),
        other => format!("`{other}`"),
    }
}
