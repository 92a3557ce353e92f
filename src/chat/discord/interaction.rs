//! Discord interactions as Lifeboat reads them (PROTOCOLS.md section 4), and `/dr` as an
//! application command: one table of subcommands and their options both registers the
//! command and turns an invocation back into the shared grammar's words.

use serde::Deserialize;
use serde_json::{Value, json};

/// An interaction, over HTTP or the gateway: only the fields Lifeboat reads. Ids are
/// snowflakes, which Discord sends as strings and some senders as numbers; both are read.
#[derive(Clone, Debug, Deserialize)]
pub struct Interaction {
    /// Its own id: the same interaction seen again is a replay.
    #[serde(default, deserialize_with = "maybe_snowflake")]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: u8,
    #[serde(default)]
    pub token: String,
    /// The server it came from; none in a direct message.
    #[serde(default, deserialize_with = "maybe_snowflake")]
    pub guild_id: Option<String>,
    #[serde(default, deserialize_with = "maybe_snowflake")]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub member: Option<Member>,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub data: Option<Data>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Member {
    pub user: User,
    #[serde(default, deserialize_with = "snowflakes")]
    pub roles: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct User {
    #[serde(deserialize_with = "snowflake")]
    pub id: String,
}

/// A snowflake as a string or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Snowflake {
    Text(String),
    Number(u64),
}

impl From<Snowflake> for String {
    fn from(s: Snowflake) -> String {
        match s {
            Snowflake::Text(t) => t,
            Snowflake::Number(n) => n.to_string(),
        }
    }
}

fn snowflake<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Snowflake::deserialize(d).map(String::from)
}

fn maybe_snowflake<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Snowflake>::deserialize(d)?.map(String::from))
}

fn snowflakes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Vec::<Snowflake>::deserialize(d)?
        .into_iter()
        .map(String::from)
        .collect())
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Data {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub options: Vec<Opt>,
    #[serde(default)]
    pub custom_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Opt {
    pub name: String,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub options: Vec<Opt>,
}

pub const PING: u8 = 1;
pub const COMMAND: u8 = 2;
pub const COMPONENT: u8 = 3;

impl Interaction {
    /// Who it is from, and the roles they hold in the guild.
    pub fn person(&self) -> Option<(String, Vec<String>)> {
        match (&self.member, &self.user) {
            (Some(m), _) => Some((m.user.id.clone(), m.roles.clone())),
            (None, Some(u)) => Some((u.id.clone(), Vec::new())),
            (None, None) => None,
        }
    }
}

/// How an option reads back into the grammar.
#[derive(Clone, Copy)]
enum Kind {
    /// A word in its place.
    Word,
    /// A switch: `--dry-run`, `--force`, when true.
    Switch(&'static str),
    /// `--reason TEXT` at the end.
    Flagged,
    /// The rest of the words.
    Rest,
}

struct Option_ {
    name: &'static str,
    description: &'static str,
    kind: Kind,
    required: bool,
}

const fn word(name: &'static str, description: &'static str) -> Option_ {
    Option_ {
        name,
        description,
        kind: Kind::Word,
        required: true,
    }
}

const fn maybe(name: &'static str, description: &'static str, kind: Kind) -> Option_ {
    Option_ {
        name,
        description,
        kind,
        required: false,
    }
}

const GROUP: Option_ = word("group", "The service group");
const RUN: Option_ = word("run", "The run's id");
const DRY_RUN: Option_ = maybe(
    "dry_run",
    "Check and report; change nothing",
    Kind::Switch("--dry-run"),
);
const REASON: Option_ = maybe("reason", "Why, for the audit log", Kind::Flagged);
const FORCE: Option_ = maybe(
    "force",
    "Start past the agents' preflight and a worked-out failback's drift check (audited)",
    Kind::Switch("--force"),
);

/// `/dr`'s subcommands, in the grammar's words.
const SUBCOMMANDS: &[(&str, &str, &[Option_])] = &[
    ("failover", "Fail a group over", &[GROUP, DRY_RUN, REASON]),
    (
        "failback",
        "Bring a group back",
        &[GROUP, DRY_RUN, REASON, FORCE],
    ),
    (
        "reprotect",
        "Make what a failover left behind a replica again",
        &[GROUP, DRY_RUN, REASON],
    ),
    (
        "drill",
        "Rehearse a failover: check everything, change nothing",
        &[GROUP],
    ),
    (
        "evacuate",
        "Fail many groups over at once, in dependency order",
        &[
            word("groups", "all, or the groups, separated by spaces"),
            DRY_RUN,
            Option_ {
                name: "reason",
                description: "Why, for the audit log",
                kind: Kind::Flagged,
                required: true,
            },
        ],
    ),
    (
        "status",
        "A run, an evacuation, a group's latest run, or every run in progress",
        &[maybe(
            "target",
            "A run id, an evacuation id or a group",
            Kind::Word,
        )],
    ),
    (
        "readiness",
        "What each group's last drill found",
        &[maybe("group", "One group", Kind::Word)],
    ),
    ("runs", "Recent runs", &[]),
    ("groups", "The service groups", &[]),
    (
        "plan",
        "A group's stages as waves",
        &[
            GROUP,
            maybe(
                "action",
                "failover, failback, drill or reprotect",
                Kind::Word,
            ),
        ],
    ),
    ("locks", "Leases held now", &[]),
    ("agents", "Live agents", &[]),
    (
        "resume",
        "Go on after a failure",
        &[
            RUN,
            maybe(
                "force",
                "Even if the workflow changed since the run started",
                Kind::Switch("--force"),
            ),
        ],
    ),
    (
        "retry",
        "Retry a stage now",
        &[RUN, word("stage", "The stage")],
    ),
    (
        "skip",
        "Skip a failed stage",
        &[
            RUN,
            word("stage", "The stage"),
            Option_ {
                name: "reason",
                description: "Why it can be skipped",
                kind: Kind::Rest,
                required: true,
            },
        ],
    ),
    ("approve", "Approve a run's open gate", &[RUN]),
    (
        "reject",
        "Reject a run's open gate",
        &[RUN, maybe("reason", "Why", Kind::Rest)],
    ),
    (
        "cancel",
        "Cancel a run",
        &[RUN, maybe("reason", "Why", Kind::Rest)],
    ),
    (
        "abort",
        "Cancel a run: running work is revoked",
        &[RUN, maybe("reason", "Why", Kind::Rest)],
    ),
    ("help", "How to use /dr", &[]),
];

/// `/dr` for the application-commands API: one command, one subcommand each.
pub fn definition() -> Value {
    let subcommands: Vec<Value> = SUBCOMMANDS
        .iter()
        .map(|(name, description, options)| {
            let options: Vec<Value> = options
                .iter()
                .map(|o| {
                    json!({
                        "name": o.name,
                        "description": o.description,
                        // 5: BOOLEAN, 3: STRING.
                        "type": if matches!(o.kind, Kind::Switch(_)) { 5 } else { 3 },
                        "required": o.required,
                    })
                })
                .collect();
            json!({ "name": name, "description": description, "type": 1, "options": options })
        })
        .collect();
    json!([{
        "name": "dr",
        "description": "Disaster recovery: fail over, fail back, drill, and watch runs",
        "type": 1,
        "options": subcommands,
    }])
}

/// The words of the grammar an invocation of `/dr` stands for.
pub fn words(data: &Data) -> Result<String, String> {
    if data.name.as_deref() != Some("dr") {
        return Err(format!(
            "unknown command `/{}`",
            data.name.as_deref().unwrap_or("")
        ));
    }
    let Some(sub) = data.options.first() else {
        return Ok("help".into());
    };
    let Some((_, _, schema)) = SUBCOMMANDS.iter().find(|(name, _, _)| *name == sub.name) else {
        return Err(format!("unknown command `{}`", sub.name));
    };
    let mut words = vec![sub.name.clone()];
    let mut tail = Vec::new();
    for option in schema.iter() {
        let Some(given) = sub.options.iter().find(|o| o.name == option.name) else {
            continue;
        };
        let text = match &given.value {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        match option.kind {
            Kind::Word | Kind::Rest if text.trim().is_empty() => {}
            Kind::Word | Kind::Rest => words.push(text),
            Kind::Switch(flag) if given.value == Some(Value::Bool(true)) => words.push(flag.into()),
            Kind::Switch(_) => {}
            Kind::Flagged if !text.trim().is_empty() => tail.extend(["--reason".into(), text]),
            Kind::Flagged => {}
        }
    }
    words.extend(tail);
    Ok(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(value: Value) -> Data {
        serde_json::from_value(value).expect("data")
    }

    #[test]
    fn snowflakes_sent_as_numbers_are_read() {
        let i: Interaction = serde_json::from_value(json!({
            "id": 1234567890123456789u64, "type": 2, "token": "t",
            "guild_id": 81384788765712384u64, "channel_id": 41771983423143937u64,
            "member": { "user": { "id": 53908232506183680u64 }, "roles": [41771983423143936u64, "7"] },
        }))
        .expect("an interaction with numeric ids");
        assert_eq!(i.id.as_deref(), Some("1234567890123456789"));
        assert_eq!(i.guild_id.as_deref(), Some("81384788765712384"));
        assert_eq!(i.channel_id.as_deref(), Some("41771983423143937"));
        assert_eq!(
            i.person(),
            Some((
                "53908232506183680".to_string(),
                vec!["41771983423143936".to_string(), "7".to_string()]
            ))
        );
        let e = serde_json::from_value::<Interaction>(json!({ "type": 2, "user": { "id": -1 } }))
            .expect_err("a negative id");
        assert!(e.to_string().contains("untagged"), "{e}");
    }

    #[test]
    fn an_invocation_reads_back_as_the_grammar() {
        let failover = data(json!({
            "name": "dr",
            "options": [{ "name": "failover", "type": 1, "options": [
                { "name": "reason", "type": 3, "value": "region b is down" },
                { "name": "group", "type": 3, "value": "petstore" },
                { "name": "dry_run", "type": 5, "value": true }
            ]}]
        }));
        assert_eq!(
            words(&failover).expect("words"),
            "failover petstore --dry-run --reason region b is down"
        );
        let skip = data(json!({
            "name": "dr",
            "options": [{ "name": "skip", "type": 1, "options": [
                { "name": "run", "type": 3, "value": "R" },
                { "name": "stage", "type": 3, "value": "dial" },
                { "name": "reason", "type": 3, "value": "DNS is fine" }
            ]}]
        }));
        assert_eq!(words(&skip).expect("words"), "skip R dial DNS is fine");
        let evacuate = data(json!({
            "name": "dr",
            "options": [{ "name": "evacuate", "type": 1, "options": [
                { "name": "reason", "type": 3, "value": "region a is gone" },
                { "name": "groups", "type": 3, "value": "db app" }
            ]}]
        }));
        let said = words(&evacuate).expect("words");
        assert_eq!(said, "evacuate db app --reason region a is gone");
        assert!(matches!(
            crate::commands::parse(&said),
            Ok(crate::commands::Command::Evacuate { .. })
        ));
        assert_eq!(words(&data(json!({ "name": "dr" }))).expect("help"), "help");
        assert!(words(&data(json!({ "name": "other" }))).is_err());
        let defined = definition();
        let subcommands = defined[0]["options"].as_array().expect("subcommands");
        assert_eq!(subcommands.len(), SUBCOMMANDS.len());
        assert!(subcommands.iter().all(|s| s["type"] == 1));
    }
}
