//! Who caused a change. Every run, audit record and approval names one, and its text form
//! (`api:ops`, `slack:U012ABC`, `agent:agent:host:42`, `lifeboat`) is what the store, the
//! bus and the API carry.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A chat platform a person speaks through, by name (`slack`, `discord`, `mattermost`):
/// each platform is a component of its own (`chat::platforms`), and nothing below chat
/// needs to know which there are. Kept inline, so that it is as cheap to pass as a number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    len: u8,
    bytes: [u8; Platform::MAX],
}

impl Platform {
    /// The longest name a platform may have.
    pub const MAX: usize = 15;

    /// A platform's own name for itself, checked when the program is built.
    pub const fn from_static(name: &'static str) -> Platform {
        let b = name.as_bytes();
        assert!(
            !b.is_empty() && b.len() <= Platform::MAX,
            "a platform name is 1 to 15 bytes"
        );
        let mut bytes = [0u8; Platform::MAX];
        let mut i = 0;
        while i < b.len() {
            assert!(
                b[i].is_ascii_lowercase() || b[i].is_ascii_digit(),
                "a platform name is lowercase letters and digits"
            );
            bytes[i] = b[i];
            i += 1;
        }
        Platform {
            len: b.len() as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

/// The kinds of actor that are not chat platforms.
const NOT_PLATFORMS: &[&str] = &["api", "alert", "cli", "agent"];

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let fits = !s.is_empty()
            && s.len() <= Platform::MAX
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && !NOT_PLATFORMS.contains(&s);
        if !fits {
            return Err(format!(
                "`{s}` is not a chat platform's name (lowercase letters and digits, like slack)"
            ));
        }
        let mut bytes = [0u8; Platform::MAX];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Ok(Platform {
            len: s.len() as u8,
            bytes,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Platform({})", self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// Lifeboat itself: a run moving on, a retry, a timeout.
    System,
    /// A dry run passing its own approval gate.
    DryRun,
    /// An API token, by name.
    Api(String),
    /// A person on a chat platform, by their user id there.
    Chat { platform: Platform, user: String },
    /// An alert route, by name.
    Alert(String),
    /// Someone at this machine's terminal.
    Terminal(String),
    /// An agent process, by its instance name (`agent:host:pid:nonce`, `embedded:…`).
    Agent(String),
    /// A group's drill schedule: the service drilling by itself.
    Schedule,
}

impl Actor {
    /// A person (through chat, a token or the terminal), as opposed to Lifeboat, an agent
    /// or an alert moving a run on.
    pub fn is_person(&self) -> bool {
        matches!(
            self,
            Actor::Api(_) | Actor::Chat { .. } | Actor::Terminal(_)
        )
    }

    /// The person at the terminal, by their login name.
    pub fn terminal() -> Actor {
        let user = std::env::var("USER").unwrap_or_default();
        let user = user.trim();
        Actor::Terminal(if user.is_empty() { "operator" } else { user }.to_string())
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System => f.write_str("lifeboat"),
            Actor::DryRun => f.write_str("dry-run"),
            Actor::Api(name) => write!(f, "api:{name}"),
            Actor::Chat { platform, user } => write!(f, "{platform}:{user}"),
            Actor::Alert(route) => write!(f, "alert:{route}"),
            Actor::Terminal(user) => write!(f, "cli:{user}"),
            Actor::Agent(instance) => write!(f, "agent:{instance}"),
            Actor::Schedule => f.write_str("schedule"),
        }
    }
}

impl FromStr for Actor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lifeboat" => return Ok(Actor::System),
            "dry-run" => return Ok(Actor::DryRun),
            "schedule" => return Ok(Actor::Schedule),
            _ => {}
        }
        let (kind, name) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not an actor (like api:NAME or slack:USER)"))?;
        let name = name.to_string();
        Ok(match kind {
            "api" => Actor::Api(name),
            "alert" => Actor::Alert(name),
            "cli" => Actor::Terminal(name),
            "agent" => Actor::Agent(name),
            platform => Actor::Chat {
                platform: platform
                    .parse()
                    .map_err(|_| format!("`{s}` is not an actor: unknown kind `{kind}`"))?,
                user: name,
            },
        })
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_actor_round_trips_through_its_text() {
        let actors = [
            Actor::System,
            Actor::DryRun,
            Actor::Api("ops".into()),
            Actor::Chat {
                platform: Platform::from_static("slack"),
                user: "U012ABC".into(),
            },
            Actor::Chat {
                platform: Platform::from_static("discord"),
                user: "53908232506183680".into(),
            },
            Actor::Alert("petstore-region-b-down".into()),
            Actor::Terminal("alice".into()),
            Actor::Agent("agent:host:42".into()),
            Actor::Schedule,
        ];
        for a in actors {
            assert_eq!(a.to_string().parse::<Actor>(), Ok(a.clone()), "{a}");
        }
        assert_eq!(
            Actor::Agent("embedded:vm:7".into()).to_string(),
            "agent:embedded:vm:7"
        );
        assert!("someone".parse::<Actor>().is_err());
        // Any platform's people read back, the platforms of later releases' included; a
        // kind that cannot be a platform's name is refused.
        assert_eq!(
            "mattermost:bob".parse::<Actor>(),
            Ok(Actor::Chat {
                platform: Platform::from_static("mattermost"),
                user: "bob".into()
            })
        );
        assert!("IRC:bob".parse::<Actor>().is_err());
        assert!("a-very-long-platform-name:bob".parse::<Actor>().is_err());
        // Whatever the text form can say, it reads back.
        assert_eq!("cli:".parse::<Actor>(), Ok(Actor::Terminal(String::new())));
    }
}
