//! Who is asking, and what they belong to. Slack resolves user-group membership through
//! its API; Discord sends a member's roles with each interaction.

pub use super::markup::mention;

use async_trait::async_trait;

use super::platform::ChatPlatform;
use crate::domain::Actor;

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
    pub platform: &'static dyn ChatPlatform,
    pub user: String,
    /// Where they asked.
    pub channel: String,
    pub membership: Box<dyn Membership>,
}

impl Requester {
    pub fn actor(&self) -> Actor {
        Actor::Chat {
            platform: self.platform.name(),
            user: self.user.clone(),
        }
    }
}
