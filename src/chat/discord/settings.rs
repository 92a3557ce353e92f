//! Discord's settings, from the environment: on when `DISCORD_TOKEN` is set.

use crate::secret::SecretString;

#[derive(Clone, Debug)]
pub struct DiscordSettings {
    /// `DISCORD_TOKEN`: the bot's token.
    pub token: SecretString,
    /// `DISCORD_PUBLIC_KEY`: verifies `/discord/interactions`. With it, interactions come
    /// over HTTP; without it, over the gateway.
    pub public_key: Option<String>,
    /// `DISCORD_APPLICATION_ID`: where the `/dr` command is registered.
    pub application_id: Option<u64>,
    /// `DISCORD_API_URL`: another base URL for the REST API (a proxy, a test stand-in).
    pub api_url: Option<String>,
    /// `DISCORD_GUILD_IDS`: the servers this Lifeboat serves (a comma list); interactions
    /// from any other are refused. Empty serves every server the bot is in.
    pub guild_ids: Vec<String>,
}

impl DiscordSettings {
    /// The settings in the environment; `None` without `DISCORD_TOKEN`.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<DiscordSettings>> {
        let Some(token) = env("DISCORD_TOKEN") else {
            return Ok(None);
        };
        Ok(Some(DiscordSettings {
            token: SecretString::from(token),
            public_key: env("DISCORD_PUBLIC_KEY"),
            application_id: env("DISCORD_APPLICATION_ID")
                .map(|id| {
                    id.trim().parse().map_err(|_| {
                        anyhow::anyhow!("DISCORD_APPLICATION_ID {id:?} is not a number")
                    })
                })
                .transpose()?,
            api_url: env("DISCORD_API_URL"),
            guild_ids: crate::config::list(env("DISCORD_GUILD_IDS").as_deref()),
        }))
    }
}
