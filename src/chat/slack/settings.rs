//! Slack's settings, from the environment: on when `SLACK_BOT_TOKEN` is set.

use crate::secret::SecretString;

#[derive(Clone, Debug)]
pub struct SlackSettings {
    /// `SLACK_BOT_TOKEN` (`xoxb-…`): what Lifeboat posts and creates channels with.
    pub bot_token: SecretString,
    /// `SLACK_SIGNING_SECRET`: verifies `/slack/*` requests; without it they are refused.
    pub signing_secret: Option<SecretString>,
    /// `SLACK_APP_TOKEN` (`xapp-…`): Socket Mode, for workspaces that cannot reach
    /// Lifeboat over HTTP.
    pub app_token: Option<SecretString>,
    /// `SLACK_API_URL`: the Web API's base URL, `https://slack.com/api` by default.
    pub api_url: String,
    /// `LIFEBOAT_SLACK_TIER_SCALE`: Slack's published rate tiers are multiplied by this,
    /// for workspaces with raised limits (and test stand-ins).
    pub tier_scale: f64,
    /// `SLACK_TEAM_IDS`: the workspaces this Lifeboat serves (a comma list); requests
    /// from any other are refused. Empty serves every workspace the app is installed in.
    pub team_ids: Vec<String>,
}

impl SlackSettings {
    /// The settings in the environment; `None` without `SLACK_BOT_TOKEN`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Option<SlackSettings>> {
        let Some(token) = env("SLACK_BOT_TOKEN") else {
            return Ok(None);
        };
        let tier_scale = match env("LIFEBOAT_SLACK_TIER_SCALE") {
            None => 1.0,
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("LIFEBOAT_SLACK_TIER_SCALE {v:?} is not a number"))?,
        };
        Ok(Some(SlackSettings {
            bot_token: SecretString::from(token),
            signing_secret: env("SLACK_SIGNING_SECRET").map(SecretString::from),
            app_token: env("SLACK_APP_TOKEN").map(SecretString::from),
            // Without the `/` slack-morphism puts before each method's name.
            api_url: env("SLACK_API_URL")
                .unwrap_or_else(|| "https://slack.com/api".into())
                .trim_end_matches('/')
                .to_string(),
            tier_scale,
            team_ids: crate::config::list(env("SLACK_TEAM_IDS").as_deref()),
        }))
    }
}
