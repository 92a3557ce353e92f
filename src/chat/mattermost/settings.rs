//! Mattermost's settings, from the environment: on when `MATTERMOST_URL` and
//! `MATTERMOST_BOT_TOKEN` are set.

use crate::secret::SecretString;

#[derive(Clone, Debug)]
pub struct MattermostSettings {
    /// `MATTERMOST_URL`: the server, `https://chat.example.com`.
    pub url: String,
    /// `MATTERMOST_BOT_TOKEN`: a bot account's access token, which posts and edits.
    pub bot_token: SecretString,
    /// `MATTERMOST_COMMAND_TOKENS`: the tokens of the `/dr` custom slash commands (one per
    /// team), comma separated; a command with any other token is refused.
    pub command_tokens: Vec<SecretString>,
    /// Where Mattermost posts button presses: `LIFEBOAT_PUBLIC_URL/mattermost/actions`.
    /// Without it, cards have no buttons (the commands still work).
    pub actions_url: Option<String>,
}

impl MattermostSettings {
    /// The settings in the environment; `None` without `MATTERMOST_URL`.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<MattermostSettings>> {
        let Some(url) = env("MATTERMOST_URL") else {
            return Ok(None);
        };
        let bot_token = env("MATTERMOST_BOT_TOKEN").ok_or_else(|| {
            anyhow::anyhow!("MATTERMOST_URL is set but MATTERMOST_BOT_TOKEN is not")
        })?;
        Ok(Some(MattermostSettings {
            url: url.trim().trim_end_matches('/').to_string(),
            bot_token: SecretString::from(bot_token),
            command_tokens: env("MATTERMOST_COMMAND_TOKENS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| SecretString::from(t.to_string()))
                .collect(),
            actions_url: env("LIFEBOAT_PUBLIC_URL")
                .map(|u| format!("{}/mattermost/actions", u.trim().trim_end_matches('/'))),
        }))
    }
}
