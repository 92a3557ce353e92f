//! How Lifeboat's Kafka clients reach the cluster: TLS and SASL from the environment, any
//! other librdkafka property from `lifeboat.yaml`'s `kafka_properties`, and the one error a
//! failed connection gets. Managed clusters (Amazon MSK, Confluent Cloud, Aiven) require TLS
//! and SASL; secrets come only from the environment and never print.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use secrecy::{ExposeSecret, SecretString};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Plaintext => "PLAINTEXT",
            Protocol::Ssl => "SSL",
            Protocol::SaslPlaintext => "SASL_PLAINTEXT",
            Protocol::SaslSsl => "SASL_SSL",
        }
    }

    fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }

    fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Protocol::Plaintext,
            "SSL" => Protocol::Ssl,
            "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
            "SASL_SSL" => Protocol::SaslSsl,
            _ => {
                return Err(format!(
                    "LIFEBOAT_KAFKA_SECURITY_PROTOCOL `{s}` is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                ));
            }
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl FromStr for Mechanism {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Mechanism::Plain,
            "SCRAM-SHA-256" => Mechanism::ScramSha256,
            "SCRAM-SHA-512" => Mechanism::ScramSha512,
            _ => {
                return Err(format!(
                    "LIFEBOAT_KAFKA_SASL_MECHANISM `{s}` is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
                ));
            }
        })
    }
}

/// The SASL login: the password is a secret, and `Debug` does not show it.
#[derive(Clone, Debug)]
pub struct Sasl {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: SecretString,
}

/// TLS and SASL for every Kafka client of the process.
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub protocol: Protocol,
    pub sasl: Option<Sasl>,
    /// The CA that signs the brokers' certificates; the system's roots when unset.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key, for clusters that ask for one (mutual TLS).
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The raw settings, as the environment gives them.
#[derive(Default)]
pub struct SecurityVars {
    pub protocol: Option<String>,
    pub mechanism: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ca: Option<String>,
    pub certificate: Option<String>,
    pub key: Option<String>,
}

impl Security {
    /// Checks that the settings fit together: a SASL protocol needs a mechanism and a login,
    /// a login needs a SASL protocol, and a client certificate needs its key.
    pub fn from_vars(v: SecurityVars) -> anyhow::Result<Security> {
        let protocol: Protocol = match &v.protocol {
            Some(p) => p.parse().map_err(anyhow::Error::msg)?,
            None => Protocol::default(),
        };
        let sasl = if protocol.sasl() {
            let mechanism = v.mechanism.as_deref().ok_or_else(|| {
                anyhow::anyhow!(
                    "LIFEBOAT_KAFKA_SECURITY_PROTOCOL {} needs LIFEBOAT_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
                    protocol.as_str()
                )
            })?;
            let (Some(username), Some(password)) = (v.username, v.password) else {
                anyhow::bail!(
                    "LIFEBOAT_KAFKA_SECURITY_PROTOCOL {} needs LIFEBOAT_KAFKA_SASL_USERNAME and LIFEBOAT_KAFKA_SASL_PASSWORD",
                    protocol.as_str()
                );
            };
            Some(Sasl {
                mechanism: mechanism.parse().map_err(anyhow::Error::msg)?,
                username,
                password: SecretString::from(password),
            })
        } else {
            anyhow::ensure!(
                v.mechanism.is_none() && v.username.is_none() && v.password.is_none(),
                "LIFEBOAT_KAFKA_SASL_* is set, but LIFEBOAT_KAFKA_SECURITY_PROTOCOL is {}: set it to SASL_SSL (or SASL_PLAINTEXT) to log in",
                protocol.as_str()
            );
            None
        };
        anyhow::ensure!(
            protocol.tls() || (v.ca.is_none() && v.certificate.is_none() && v.key.is_none()),
            "LIFEBOAT_KAFKA_SSL_* is set, but LIFEBOAT_KAFKA_SECURITY_PROTOCOL is {}: set it to SSL or SASL_SSL to use TLS",
            protocol.as_str()
        );
        anyhow::ensure!(
            v.certificate.is_some() == v.key.is_some(),
            "LIFEBOAT_KAFKA_SSL_CERTIFICATE_LOCATION and LIFEBOAT_KAFKA_SSL_KEY_LOCATION go together (mutual TLS needs both)"
        );
        Ok(Security {
            protocol,
            sasl,
            ca: v.ca.map(PathBuf::from),
            certificate: v.certificate.map(PathBuf::from),
            key: v.key.map(PathBuf::from),
        })
    }

    /// Sets these on a client's configuration.
    pub fn apply(&self, config: &mut ClientConfig) {
        config.set("security.protocol", self.protocol.as_str());
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanism", sasl.mechanism.as_str())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose_secret());
        }
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        if let Some(ca) = &self.ca {
            config.set("ssl.ca.location", path(ca));
        }
        if let (Some(cert), Some(key)) = (&self.certificate, &self.key) {
            config
                .set("ssl.certificate.location", path(cert))
                .set("ssl.key.location", path(key));
        }
    }
}

impl fmt::Display for Security {
    /// How the clients connect, for messages: the protocol, the mechanism and the user,
    /// never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol.as_str())?;
        if let Some(sasl) = &self.sasl {
            write!(f, ", {} as `{}`", sasl.mechanism.as_str(), sasl.username)?;
        }
        if let Some(ca) = &self.ca {
            write!(f, ", CA {}", ca.display())?;
        }
        if let Some(cert) = &self.certificate {
            write!(f, ", client certificate {}", cert.display())?;
        }
        Ok(())
    }
}

/// Properties Lifeboat sets itself, or that its settings cover: `kafka_properties` may not
/// set them.
const MANAGED: &[(&str, &str)] = &[
    ("bootstrap.servers", "set LIFEBOAT_KAFKA_BROKERS"),
    ("group.id", "Lifeboat names its consumer groups"),
    ("enable.auto.commit", "Lifeboat commits offsets itself"),
    ("security.protocol", "set LIFEBOAT_KAFKA_SECURITY_PROTOCOL"),
    ("sasl.mechanism", "set LIFEBOAT_KAFKA_SASL_MECHANISM"),
    ("sasl.mechanisms", "set LIFEBOAT_KAFKA_SASL_MECHANISM"),
    ("sasl.username", "set LIFEBOAT_KAFKA_SASL_USERNAME"),
    ("ssl.ca.location", "set LIFEBOAT_KAFKA_SSL_CA_LOCATION"),
    (
        "ssl.certificate.location",
        "set LIFEBOAT_KAFKA_SSL_CERTIFICATE_LOCATION",
    ),
    ("ssl.key.location", "set LIFEBOAT_KAFKA_SSL_KEY_LOCATION"),
];

/// Checks `kafka_properties` from a settings file: scalar values, no secrets, nothing
/// Lifeboat manages.
pub fn check_properties(
    file: &str,
    raw: impl IntoIterator<Item = (String, serde_json::Value)>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (key, value) in raw {
        let name = key.trim().to_ascii_lowercase();
        if holds_secret(&name) {
            anyhow::bail!(
                "{file}: kafka_properties.{key} holds a secret, and settings files may not: pass the SASL password as LIFEBOAT_KAFKA_SASL_PASSWORD and keys as files (LIFEBOAT_KAFKA_SSL_KEY_LOCATION)"
            );
        }
        if let Some((_, instead)) = MANAGED.iter().find(|(k, _)| *k == name) {
            anyhow::bail!("{file}: kafka_properties.{key} cannot be set here: {instead}");
        }
        let value = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => anyhow::bail!(
                "{file}: kafka_properties.{key} is {other}; a librdkafka property is a string, a number or true/false"
            ),
        };
        out.push((name, value));
    }
    Ok(out)
}

fn holds_secret(name: &str) -> bool {
    [
        "password",
        "passphrase",
        "secret",
        "jaas",
        "ssl.key.pem",
        "private.key",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// A client's context: keeps the last error librdkafka reported, which says why a
/// connection failed (a refused login, an untrusted certificate) where the failed call
/// itself only says that it timed out.
#[derive(Clone, Default)]
pub struct Watch {
    last_error: Arc<Mutex<Option<String>>>,
}

impl Watch {
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        // "1/1 brokers are down" follows the error that says why; keep the why.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            return;
        }
        let said = if reason.is_empty() {
            error.to_string()
        } else {
            reason.to_string()
        };
        // librdkafka logs the failure itself; this keeps it for the message that ends a
        // start-up which cannot reach the cluster.
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(said);
    }
}

impl ConsumerContext for Watch {}

/// For the start-up probe, which sends nothing.
impl ProducerContext for Watch {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(protocol: &str) -> SecurityVars {
        SecurityVars {
            protocol: Some(protocol.into()),
            ..SecurityVars::default()
        }
    }

    #[test]
    fn sasl_needs_a_mechanism_and_a_login_and_never_prints_the_password() {
        let e = Security::from_vars(vars("SASL_SSL")).expect_err("no mechanism");
        assert!(
            e.to_string().contains("LIFEBOAT_KAFKA_SASL_MECHANISM"),
            "{e}"
        );
        let s = Security::from_vars(SecurityVars {
            mechanism: Some("scram-sha-512".into()),
            username: Some("lifeboat".into()),
            password: Some("pw-5a8e-secret".into()),
            ca: Some("/etc/ca.pem".into()),
            ..vars("sasl_ssl")
        })
        .expect("valid");
        assert_eq!(s.protocol, Protocol::SaslSsl);
        for shown in [format!("{s}"), format!("{s:?}")] {
            assert!(!shown.contains("pw-5a8e"), "{shown}");
        }
        assert!(s.to_string().contains("SCRAM-SHA-512 as `lifeboat`"));
    }

    #[test]
    fn settings_that_do_not_fit_together_are_refused() {
        assert!(Security::from_vars(vars("TLS")).is_err());
        let login_without_sasl = SecurityVars {
            username: Some("u".into()),
            ..vars("SSL")
        };
        assert!(Security::from_vars(login_without_sasl).is_err());
        let tls_without_ssl = SecurityVars {
            ca: Some("/ca.pem".into()),
            ..vars("PLAINTEXT")
        };
        assert!(Security::from_vars(tls_without_ssl).is_err());
        let cert_without_key = SecurityVars {
            certificate: Some("/c.pem".into()),
            ..vars("SSL")
        };
        assert!(Security::from_vars(cert_without_key).is_err());
        assert_eq!(
            Security::from_vars(SecurityVars::default())
                .expect("plaintext")
                .protocol,
            Protocol::Plaintext
        );
    }

    #[test]
    fn properties_may_not_hold_secrets_or_what_lifeboat_sets() {
        let ok = check_properties(
            "lifeboat.yaml",
            [
                ("client.id".to_string(), serde_json::json!("lifeboat")),
                (
                    "socket.keepalive.enable".to_string(),
                    serde_json::json!(true),
                ),
                ("message.max.bytes".to_string(), serde_json::json!(2000000)),
            ],
        )
        .expect("fine");
        assert_eq!(ok[2], ("message.max.bytes".into(), "2000000".into()));
        for key in [
            "sasl.password",
            "ssl.key.password",
            "sasl.oauthbearer.client.secret",
        ] {
            let e = check_properties("lifeboat.yaml", [(key.to_string(), serde_json::json!("x"))])
                .expect_err(key);
            assert!(e.to_string().contains("holds a secret"), "{e}");
        }
        let e = check_properties(
            "lifeboat.yaml",
            [("bootstrap.servers".to_string(), serde_json::json!("x:9092"))],
        )
        .expect_err("managed");
        assert!(e.to_string().contains("LIFEBOAT_KAFKA_BROKERS"), "{e}");
    }
}
