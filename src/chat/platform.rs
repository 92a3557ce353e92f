//! A chat platform as a component: its name, the groups.yaml keys it owns, its markup
//! (`markup`), its inbound paths, and how it starts. The access check and the replies go
//! through this, never through a match on the platform.

use async_trait::async_trait;

use super::launch::{Launch, Running};
use super::markup::Markup;
use crate::domain::Platform;
use crate::workflow::ChatKeys;

/// A chat platform: a component of its own, registered by one line in `chat::platforms`.
/// It reads its settings, serves its inbound paths (verifying every request before reading
/// it), posts and edits through its `Outbound`, and marks text up its own way.
#[async_trait]
pub trait ChatPlatform: Markup {
    fn name(&self) -> Platform;
    /// As a person writes it: `Slack`.
    fn title(&self) -> &'static str;
    /// The groups.yaml keys it owns. Its `allow` lists are `{name}_users` and another
    /// `{name}_…` key, so that every layer can tell whose lists they are.
    fn keys(&self) -> ChatKeys;
    /// The HTTP paths it serves once started; refused with 401 while it is not.
    fn paths(&self) -> &'static [&'static str];

    /// Starts it when its settings are there (in `launch.settings.chat`, or else in the
    /// environment); `None` when they are not.
    async fn start(&self, launch: &Launch<'_>) -> anyhow::Result<Option<Running>>;

    /// An example `allow` for a group, for the answer to someone it names no one for.
    fn allow_example(&self) -> String {
        let keys = self.keys();
        format!(
            "`allow: {{ {}: [USER_ID], {}: [GROUP_ID] }}`",
            keys.users, keys.groups
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::markup::{Plain, link, mention};
    use crate::domain::Actor;

    #[test]
    fn every_platforms_keys_are_its_own() {
        for p in super::super::platforms() {
            let keys = p.keys();
            let name = p.name().to_string();
            assert_eq!(keys.platform, name);
            assert_eq!(keys.users, format!("{name}_users"));
            assert!(
                keys.groups.starts_with(&format!("{name}_")),
                "{}",
                keys.groups
            );
            assert_ne!(keys.groups, keys.users);
        }
    }

    #[test]
    fn people_are_mentioned_only_on_their_own_platform() {
        let slack = super::super::slack::SLACK;
        let alice = Actor::Chat {
            platform: slack.name(),
            user: "U1".into(),
        };
        assert_eq!(mention(&alice, &slack), "<@U1>");
        assert_eq!(
            mention(&alice, &super::super::discord::DISCORD),
            "`slack:U1`"
        );
        assert_eq!(mention(&alice, &Plain), "`slack:U1`");
        assert_eq!(link(Some("http://x"), "t", &slack), "<http://x|t>");
        assert_eq!(link(Some("http://x"), "t", &Plain), "t (http://x)");
        assert_eq!(link(None, "t", &slack), "`t`");
    }
}
