//! Settings: defaults are the embedded deployment; `lifeboat.yaml` (from `--config` or
//! `LIFEBOAT_CONFIG`) may set any key; the environment overrides both. Secrets come only
//! from the environment, and are held so that printing the settings shows none of them.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;

use crate::bus::kafka_config::{Security, SecurityVars, check_properties};
use crate::secret::{DatabaseUrl, ExposeSecret, SecretString};

#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    pub kafka_brokers: Option<String>,
    /// Partitions and replication of topics created at start-up, and the consumer's
    /// longest fetch wait (the floor of bus latency).
    pub kafka_partitions: i32,
    pub kafka_replication: i32,
    pub kafka_fetch_wait_ms: u32,
    pub kafka_namespace: Option<String>,
    /// `LIFEBOAT_KAFKA_SECURITY_PROTOCOL`, `LIFEBOAT_KAFKA_SASL_*`, `LIFEBOAT_KAFKA_SSL_*`.
    pub kafka_security: Security,
    /// `kafka_properties` in the settings file: other librdkafka properties, no secrets.
    pub kafka_properties: Vec<(String, String)>,
    pub workflows: PathBuf,
    /// From `LIFEBOAT_API_TOKENS`.
    pub api_tokens: Vec<ApiToken>,
    /// Chat platforms' settings given here rather than read from the environment.
    pub chat: ChatSettings,
    /// Whether components read their own settings from the environment when the service
    /// starts (chat platforms, alert sources' secrets): so for `serve`, not for the
    /// embedded deployment of the demo, the benchmark and tests, which take only what
    /// they are given.
    pub components_read_env: bool,
    pub alerts: AlertSettings,
    /// `LIFEBOAT_PUBLIC_URL`: where people reach this service, for links written elsewhere
    /// (PagerDuty notes).
    pub public_url: Option<String>,
}

/// The alert receivers' settings. Each source reads its own secret from its variable
/// (`ALERTMANAGER_TOKEN`, `PAGERDUTY_WEBHOOK_SECRET`, `GRAFANA_WEBHOOK_SECRET`, or a
/// generic source's `${env:…}`) when the service starts; a receiver whose secret is unset
/// refuses every request, unless `LIFEBOAT_OPEN_WEBHOOKS` names it.
#[derive(Clone, Debug, Default)]
pub struct AlertSettings {
    /// Secrets by source name, used instead of the source's variable.
    pub secrets: BTreeMap<String, SecretString>,
    /// `LIFEBOAT_OPEN_WEBHOOKS`: sources that take requests with no credentials at all
    /// (`alertmanager,pagerduty,grafana`), for a network where only senders reach them.
    pub open: Vec<String>,
    /// Notes on the PagerDuty incidents runs come from; off when `None`.
    pub pagerduty_api: Option<PagerDutyApi>,
}

#[derive(Clone, Debug)]
pub struct PagerDutyApi {
    /// `PAGERDUTY_API_TOKEN`: a REST API key.
    pub token: SecretString,
    /// `PAGERDUTY_API_URL`: `https://api.pagerduty.com` by default.
    pub url: String,
    /// `PAGERDUTY_FROM`: the email of the PagerDuty user the notes are written as, which
    /// the API asks of notes made with an account key.
    pub from: Option<String>,
}

/// Each chat platform's settings, by their type: set here (tests, embedders), or else
/// read by the platform from the environment when the service starts
/// (`chat::ChatPlatform::start`). Printing them shows none of their values.
#[derive(Clone, Default)]
pub struct ChatSettings(BTreeMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl ChatSettings {
    pub fn set<T: Any + Send + Sync>(&mut self, settings: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(settings));
    }

    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

impl std::fmt::Debug for ChatSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChatSettings({} set)", self.0.len())
    }
}

/// A bearer token of the API and the name it acts under (`api:<name>` in the audit).
#[derive(Clone, Debug)]
pub struct ApiToken {
    pub name: String,
    pub token: SecretString,
    /// `name:token:read`: the token reads, and is refused (403) on every POST.
    pub read_only: bool,
}

impl ApiToken {
    pub fn new(name: impl Into<String>, token: impl Into<String>) -> ApiToken {
        ApiToken {
            name: name.into(),
            token: SecretString::from(token.into()),
            read_only: false,
        }
    }

    /// A token that may only read.
    pub fn read_only(name: impl Into<String>, token: impl Into<String>) -> ApiToken {
        ApiToken {
            read_only: true,
            ..ApiToken::new(name, token)
        }
    }

    /// Whether `presented` is this token, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.token.expose_secret().as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    database_url: Option<String>,
    kafka_brokers: Option<String>,
    kafka_properties: Option<indexmap::IndexMap<String, serde_json::Value>>,
    workflows: Option<PathBuf>,
}

impl Settings {
    pub fn load(config: Option<&Path>) -> anyhow::Result<Settings> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let path = config
            .map(Path::to_path_buf)
            .or_else(|| env("LIFEBOAT_CONFIG").map(PathBuf::from));
        let file: File = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                crate::workflow::source::parse(p, &text).map_err(|d| anyhow::anyhow!("{d}"))?
            }
            None => File::default(),
        };
        let listen = env("LIFEBOAT_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen.parse().with_context(|| {
            format!("LIFEBOAT_LISTEN {listen:?} is not an address like 127.0.0.1:8080")
        })?;
        Ok(Settings {
            listen,
            database_url: DatabaseUrl::new(
                env("LIFEBOAT_DATABASE_URL")
                    .or(file.database_url)
                    .unwrap_or_else(|| "sqlite://lifeboat.db".into()),
            ),
            kafka_brokers: env("LIFEBOAT_KAFKA_BROKERS").or(file.kafka_brokers),
            kafka_partitions: number(
                env("LIFEBOAT_KAFKA_PARTITIONS"),
                "LIFEBOAT_KAFKA_PARTITIONS",
                6,
            )?,
            kafka_replication: number(
                env("LIFEBOAT_KAFKA_REPLICATION"),
                "LIFEBOAT_KAFKA_REPLICATION",
                1,
            )?,
            kafka_fetch_wait_ms: number(
                env("LIFEBOAT_KAFKA_FETCH_WAIT_MS"),
                "LIFEBOAT_KAFKA_FETCH_WAIT_MS",
                5,
            )?,
            kafka_namespace: env("LIFEBOAT_KAFKA_NAMESPACE"),
            kafka_security: Security::from_vars(SecurityVars {
                protocol: env("LIFEBOAT_KAFKA_SECURITY_PROTOCOL"),
                mechanism: env("LIFEBOAT_KAFKA_SASL_MECHANISM"),
                username: env("LIFEBOAT_KAFKA_SASL_USERNAME"),
                password: env("LIFEBOAT_KAFKA_SASL_PASSWORD"),
                ca: env("LIFEBOAT_KAFKA_SSL_CA_LOCATION"),
                certificate: env("LIFEBOAT_KAFKA_SSL_CERTIFICATE_LOCATION"),
                key: env("LIFEBOAT_KAFKA_SSL_KEY_LOCATION"),
            })?,
            kafka_properties: check_properties(
                &path
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                file.kafka_properties.unwrap_or_default(),
            )?,
            workflows: env("LIFEBOAT_WORKFLOWS")
                .map(PathBuf::from)
                .or(file.workflows)
                .unwrap_or_else(|| "workflows".into()),
            api_tokens: parse_tokens(&env("LIFEBOAT_API_TOKENS").unwrap_or_default())?,
            chat: ChatSettings::default(),
            components_read_env: true,
            alerts: AlertSettings {
                secrets: BTreeMap::new(),
                open: open_webhooks(env("LIFEBOAT_OPEN_WEBHOOKS")),
                pagerduty_api: env("PAGERDUTY_API_TOKEN").map(|token| PagerDutyApi {
                    token: SecretString::from(token),
                    url: env("PAGERDUTY_API_URL")
                        .unwrap_or_else(|| "https://api.pagerduty.com".into())
                        .trim_end_matches('/')
                        .to_string(),
                    from: env("PAGERDUTY_FROM"),
                }),
            },
            public_url: env("LIFEBOAT_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_string()),
        })
    }
}

/// The sources named, checked against those there are when the service starts.
fn open_webhooks(raw: Option<String>) -> Vec<String> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl AlertSettings {
    /// These settings with `secret` for the source `name`.
    pub fn with_secret(mut self, name: &str, secret: &str) -> AlertSettings {
        self.secrets
            .insert(name.to_string(), SecretString::from(secret.to_string()));
        self
    }
}

fn number<T: std::str::FromStr>(raw: Option<String>, name: &str, default: T) -> anyhow::Result<T> {
    match raw {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} {v:?} is not a number")),
    }
}

impl Settings {
    /// What a component reads from the environment: the variable, when
    /// `components_read_env`; nothing otherwise.
    pub fn component_env(&self, name: &str) -> Option<String> {
        if self.components_read_env {
            std::env::var(name).ok()
        } else {
            None
        }
    }

    /// The embedded deployment on this database and workflows: for the demo, the benchmark
    /// and tests.
    pub fn embedded(database_url: impl Into<String>, workflows: PathBuf) -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: DatabaseUrl::new(database_url),
            kafka_brokers: None,
            kafka_partitions: 6,
            kafka_replication: 1,
            kafka_fetch_wait_ms: 5,
            kafka_namespace: None,
            kafka_security: Security::default(),
            kafka_properties: Vec::new(),
            workflows,
            api_tokens: Vec::new(),
            chat: ChatSettings::default(),
            components_read_env: false,
            alerts: AlertSettings::default(),
            public_url: None,
        }
    }

    pub fn kafka(&self) -> Option<crate::bus::kafka::KafkaSettings> {
        self.kafka_brokers
            .as_ref()
            .map(|brokers| crate::bus::kafka::KafkaSettings {
                brokers: brokers.clone(),
                partitions: self.kafka_partitions,
                replication: self.kafka_replication,
                fetch_wait_ms: self.kafka_fetch_wait_ms,
                namespace: self.kafka_namespace.clone(),
                security: self.kafka_security.clone(),
                properties: self.kafka_properties.clone(),
            })
    }
}

/// A comma list from the environment (`SLACK_TEAM_IDS`): its items, trimmed, empty ones
/// left out.
pub fn list(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `name:token,name:token:read`; a bare token is named `api`, and one ending in `:read`
/// may only read.
pub fn parse_tokens(raw: &str) -> anyhow::Result<Vec<ApiToken>> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (entry, read_only) = match entry.strip_suffix(":read") {
                Some(rest) => (rest, true),
                None => (entry, false),
            };
            let (name, token) = entry.split_once(':').unwrap_or(("api", entry));
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && !name.contains(char::is_whitespace),
                "LIFEBOAT_API_TOKENS: a token's name is empty or has spaces (write name:token)"
            );
            anyhow::ensure!(
                token.len() >= 16,
                "LIFEBOAT_API_TOKENS: the token of `{name}` is shorter than 16 characters"
            );
            let token = ApiToken::new(name, token);
            Ok(ApiToken { read_only, ..token })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_deployment_takes_no_component_settings_from_the_environment() {
        // PATH is set wherever tests run; a Slack token in a developer's shell must not
        // put the demo or a test into their workspace.
        let mut s = Settings::embedded("sqlite://x.db", "workflows".into());
        assert_eq!(s.component_env("PATH"), None);
        s.components_read_env = true;
        assert!(s.component_env("PATH").is_some());
    }

    #[test]
    fn printing_the_settings_shows_no_secret() {
        let mut s = Settings::embedded(
            "postgres://lifeboat:pg-pass-7f3a@db:5432/lifeboat",
            PathBuf::from("workflows"),
        );
        s.api_tokens = parse_tokens("ops:token-9c1e-0123456789").expect("tokens");
        let printed = format!("{s:?}");
        assert!(!printed.contains("pg-pass-7f3a"), "{printed}");
        assert!(!printed.contains("token-9c1e"), "{printed}");
        assert!(
            printed.contains("postgres://lifeboat:***@db:5432/lifeboat"),
            "{printed}"
        );
        assert!(s.api_tokens[0].matches("token-9c1e-0123456789"));
        assert!(!s.api_tokens[0].matches("token-9c1e-012345678"));
    }

    #[test]
    fn a_token_ending_in_read_may_only_read() {
        let tokens =
            parse_tokens("ops:0123456789abcdef, viewer:fedcba9876543210:read").expect("tokens");
        assert_eq!(
            tokens
                .iter()
                .map(|t| (t.name.as_str(), t.read_only))
                .collect::<Vec<_>>(),
            [("ops", false), ("viewer", true)]
        );
        assert!(
            tokens[1].matches("fedcba9876543210"),
            "`:read` is no part of the token"
        );
        assert!(!tokens[1].matches("fedcba9876543210:read"));
        // A scope with too short a token left is still refused.
        assert!(parse_tokens("viewer:short:read").is_err());
    }
}
