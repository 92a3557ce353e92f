//! Every parser of what arrives from outside, fed arbitrary bytes and real bodies broken at
//! random: the alert webhooks (each source's `verify`, `parse` and `recognises`, and the
//! receiver that runs them), Discord interactions, Slack's and Mattermost's forms and
//! payloads, and the YAML of a workflows directory. None may panic: a request that cannot
//! be read is refused with a reason, and a file that cannot be read is reported at a file,
//! line and column. These are the first code to touch what anyone can send, so a panic
//! one malformed delivery can cause is one anyone can cause, as often as they like.
//!
//! Breakage comes in two kinds: bytes (flipped, cut, inserted, repeated) for the syntax,
//! and values swapped for values of other types (nulls, huge numbers, lists, long
//! strings, deep nesting) or removed, for everything after the syntax.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::Json;
use ed25519_dalek::Signer;
use lifeboat::agents::Registry;
use lifeboat::alerts::sources::generic::Generic;
use lifeboat::alerts::sources::{AlertSource, Headers, Request, builtin};
use lifeboat::alerts::{Rejected, Sources};
use lifeboat::chat::card::{Button, Target};
use lifeboat::chat::discord::interaction::{self, Interaction};
use lifeboat::chat::mattermost::inbound::{Press, SlashCommand as MattermostCommand};
use lifeboat::chat::mattermost::render::Actions;
use lifeboat::chat::slack::inbound::{Interaction as SlackInteraction, SlashCommand};
use lifeboat::chat::slack::routes::form;
use lifeboat::chat::slack::verify as slack_verify;
use lifeboat::config::AlertSettings;
use lifeboat::secret::SecretString;
use lifeboat::signing;
use lifeboat::workflow::GenericSource;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

/// A failure prints its smallest input; nothing is written into the source tree.
pub(crate) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Breaking things.

/// Text put where a value was, or anywhere: JSON of another type, or not quite JSON.
#[derive(Clone, Debug)]
pub(crate) enum Junk {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Numbers no integer type holds, and floats past `f64`.
    Huge(Index),
    Text(String),
    /// A string this many characters long.
    Long(usize),
    List,
    Map,
    /// Lists (or maps) inside each other this deep.
    Deep {
        depth: usize,
        map: bool,
    },
    /// Escapes and control characters a string must not hold.
    Escape(Index),
    /// What the format's grammar almost allows.
    Special(Index),
}

const HUGE: &[&str] = &[
    "1e400",
    "-1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890123456789012345678901234567890",
    "0.0000000000000000000000000000000000000000001e-400",
    "1E+2147483648",
    "-0",
    "4.9e-324",
    "1.7976931348623157e309",
];

const ESCAPES: &[&str] = &[
    r#""\ud800""#,
    r#""\udc00\ud800""#,
    r#""\u12""#,
    r#""\q""#,
    "\"\u{0}\u{1f}\"",
    "\"unterminated",
    r#""\uDBFF\uDFFF""#,
];

const JSON_SPECIALS: &[&str] = &[
    "NaN",
    "Infinity",
    "-Infinity",
    "undefined",
    "0x10",
    "01",
    "+1",
    ".5",
    "1.",
    "--1",
    "true false",
    "nul",
    r#""a" "b""#,
    "[1,]",
    r#"{"a":1,}"#,
    r#"{"a"}"#,
    "// comment",
    "'single'",
    "\u{feff}",
];

const YAML_SPECIALS: &[&str] = &[
    "*nowhere",
    "&a",
    "&a [*a]",
    "!!binary aGVsbG8=",
    "!!int x",
    "!custom 1",
    "|",
    ">-",
    "'unterminated",
    "[",
    "{",
    "]",
    "}",
    "- a",
    "? a",
    "<<: *x",
    "---",
    "...",
    "%YAML 1.1",
    ".inf",
    "-.inf",
    ".nan",
    "0x1f",
    "0o17",
    "1_000",
    "2001-12-14t21:59:43.10-05:00",
    "yes",
    "no",
    "@",
    "`",
    "a: b: c",
    "{a: [b, {c: d}]}",
    "!!map {}",
    "!!seq []",
    "!!str",
    "${env:HOME}",
    "${file:/nonexistent/lifeboat}",
    "${unclosed",
    "${nope}",
    "\t",
];

impl Junk {
    fn json(&self) -> String {
        match self {
            Junk::Null => "null".into(),
            Junk::Bool(b) => b.to_string(),
            Junk::Int(n) => n.to_string(),
            Junk::Float(f) => Value::from(*f).to_string(),
            Junk::Huge(i) => i.get(HUGE).to_string(),
            Junk::Text(s) => Value::String(s.clone()).to_string(),
            Junk::Long(n) => Value::String("é".repeat(*n)).to_string(),
            Junk::List => r#"[1,"two",null,{},[],true,-0.5]"#.into(),
            Junk::Map => r#"{"":"","a":{"b":[]}}"#.into(),
            Junk::Deep { depth, map: false } => "[".repeat(*depth) + &"]".repeat(*depth),
            Junk::Deep { depth, map: true } => "{\"a\":".repeat(*depth) + "1" + &"}".repeat(*depth),
            Junk::Escape(i) => i.get(ESCAPES).to_string(),
            Junk::Special(i) => i.get(JSON_SPECIALS).to_string(),
        }
    }

    fn yaml(&self) -> String {
        match self {
            Junk::Null => "~".into(),
            Junk::Float(f) => f.to_string(),
            Junk::Long(n) => "x".repeat(*n),
            Junk::Deep { depth, map: true } => "{a: ".repeat(*depth) + "1" + &"}".repeat(*depth),
            Junk::Special(i) => i.get(YAML_SPECIALS).to_string(),
            other => other.json(),
        }
    }
}

/// Strings of the type a field expects, with what trips up code that reads them: nothing,
/// blanks, separators, and characters wider than a byte.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_string()),
        "[:=,/ .é€𝄞a-z0-9-]{1,16}",
        "\\PC{1,24}",
    ]
}

fn junk() -> impl Strategy<Value = Junk> {
    prop_oneof![
        1 => Just(Junk::Null),
        1 => any::<bool>().prop_map(Junk::Bool),
        1 => any::<i64>().prop_map(Junk::Int),
        1 => any::<f64>().prop_map(Junk::Float),
        1 => any::<Index>().prop_map(Junk::Huge),
        5 => text().prop_map(Junk::Text),
        1 => (0usize..100_000).prop_map(Junk::Long),
        1 => Just(Junk::List),
        1 => Just(Junk::Map),
        1 => (1usize..3_000, any::<bool>()).prop_map(|(depth, map)| Junk::Deep { depth, map }),
        1 => any::<Index>().prop_map(Junk::Escape),
        1 => any::<Index>().prop_map(Junk::Special),
    ]
}

/// One change to a body: to its bytes, or (when it still reads as JSON) to its values.
#[derive(Clone, Debug)]
pub(crate) enum Mutation {
    Flip {
        at: Index,
        mask: u8,
    },
    Truncate {
        at: Index,
    },
    Insert {
        at: Index,
        bytes: Vec<u8>,
    },
    Delete {
        at: Index,
        len: u8,
    },
    Repeat {
        at: Index,
        len: u8,
        times: u8,
    },
    Splice {
        at: Index,
        junk: Junk,
    },
    /// A value, or the whole body, replaced.
    Replace {
        node: Index,
        junk: Junk,
    },
    /// A member or element removed.
    Remove {
        node: Index,
    },
    /// A member added to an object.
    Add {
        node: Index,
        key: String,
        junk: Junk,
    },
    /// Every `every`th string replaced, from the `from`th: one field alone is seldom
    /// chosen out of dozens, and a value of the right type goes furthest.
    Strings {
        every: u8,
        from: u8,
        junk: Junk,
    },
}

fn byte_mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<Index>;
    prop_oneof![
        (at(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        at().prop_map(|at| Mutation::Truncate { at }),
        (at(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (at(), 1u8..=64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (at(), 1u8..=32, 1u8..=64).prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
        (at(), junk()).prop_map(|(at, junk)| Mutation::Splice { at, junk }),
    ]
}

fn value_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), junk()).prop_map(|(node, junk)| Mutation::Replace { node, junk }),
        2 => any::<Index>().prop_map(|node| Mutation::Remove { node }),
        1 => (any::<Index>(), "\\PC{0,12}", junk())
            .prop_map(|(node, key, junk)| Mutation::Add { node, key, junk }),
        2 => (1u8..=3, 0u8..3, junk())
            .prop_map(|(every, from, junk)| Mutation::Strings { every, from, junk }),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![1 => byte_mutation(), 2 => value_mutation()]
}

pub(crate) fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 0..5)
}

/// Marks where junk goes in a value written out; no body holds it.
const SLOT: &str = "lifeboat-fuzz-slot-3f9a";

/// Every node's JSON pointer, root first.
fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
    out.push(at.to_string());
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers(item, &format!("{at}/{i}"), out);
            }
        }
        Value::Object(members) => {
            for (k, item) in members {
                let key = k.replace('~', "~0").replace('/', "~1");
                pointers(item, &format!("{at}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// `v` written out with the slot (if it was put in) replaced by `junk`.
fn written(v: &Value, junk: Option<&Junk>) -> Vec<u8> {
    let text = v.to_string();
    match junk {
        Some(j) => text.replace(&format!("\"{SLOT}\""), &j.json()),
        None => text,
    }
    .into_bytes()
}

fn mutate(body: &mut Vec<u8>, m: &Mutation) {
    let len = body.len();
    match m {
        Mutation::Flip { at, mask } => {
            if len > 0 {
                body[at.index(len)] ^= mask;
            }
        }
        Mutation::Truncate { at } => body.truncate(at.index(len + 1)),
        Mutation::Insert { at, bytes } => {
            let i = at.index(len + 1);
            body.splice(i..i, bytes.iter().copied());
        }
        Mutation::Delete { at, len: n } => {
            if len > 0 {
                let i = at.index(len);
                body.drain(i..(i + usize::from(*n)).min(len));
            }
        }
        Mutation::Repeat { at, len: n, times } => {
            if len > 0 {
                let i = at.index(len);
                let end = (i + usize::from(*n)).min(len);
                let piece = body[i..end].repeat(usize::from(*times));
                body.splice(end..end, piece);
            }
        }
        Mutation::Splice { at, junk } => {
            let i = at.index(len + 1);
            body.splice(i..i, junk.json().into_bytes());
        }
        Mutation::Replace { .. }
        | Mutation::Remove { .. }
        | Mutation::Add { .. }
        | Mutation::Strings { .. } => {
            // Values can only be found in what still reads; broken syntax stays as it is.
            if let Ok(mut v) = serde_json::from_slice::<Value>(body) {
                *body = revalued(&mut v, m);
            }
        }
    }
}

fn revalued(v: &mut Value, m: &Mutation) -> Vec<u8> {
    let mut nodes = Vec::new();
    pointers(v, "", &mut nodes);
    match m {
        Mutation::Replace { node, junk } => {
            let p: &String = node.get(&nodes);
            if let Some(slot) = v.pointer_mut(p) {
                *slot = Value::String(SLOT.into());
            }
            written(v, Some(junk))
        }
        Mutation::Remove { node } => {
            let inner = &nodes[1..];
            if !inner.is_empty() {
                let p = node.get(inner);
                if let Some((parent, last)) = p.rsplit_once('/') {
                    let key = last.replace("~1", "/").replace("~0", "~");
                    match v.pointer_mut(parent) {
                        Some(Value::Object(members)) => {
                            members.remove(&key);
                        }
                        Some(Value::Array(items)) => {
                            if let Ok(i) = key.parse::<usize>()
                                && i < items.len()
                            {
                                items.remove(i);
                            }
                        }
                        _ => {}
                    }
                }
            }
            written(v, None)
        }
        Mutation::Add { node, key, junk } => {
            let objects: Vec<&String> = nodes
                .iter()
                .filter(|p| v.pointer(p).is_some_and(Value::is_object))
                .collect();
            if objects.is_empty() {
                return written(v, None);
            }
            let p = node.get(&objects).to_string();
            if let Some(Value::Object(members)) = v.pointer_mut(&p) {
                members.insert(key.clone(), Value::String(SLOT.into()));
            }
            written(v, Some(junk))
        }
        Mutation::Strings { every, from, junk } => {
            let every = usize::from(*every);
            let strings = nodes
                .iter()
                .filter(|p| v.pointer(p).is_some_and(Value::is_string))
                .skip(usize::from(*from) % every)
                .step_by(every)
                .cloned()
                .collect::<Vec<_>>();
            for p in strings {
                if let Some(slot) = v.pointer_mut(&p) {
                    *slot = Value::String(SLOT.into());
                }
            }
            written(v, Some(junk))
        }
        _ => written(v, None),
    }
}

pub(crate) fn broken(seed: &str, ms: &[Mutation]) -> Vec<u8> {
    let mut body = seed.as_bytes().to_vec();
    for m in ms {
        mutate(&mut body, m);
    }
    body
}

/// One change to a urlencoded form: to its bytes, to its fields, or to the JSON one of
/// them carries.
#[derive(Clone, Debug)]
pub(crate) enum FormMutation {
    Bytes(Mutation),
    Drop(Index),
    Set(Index, String),
    Double(Index),
    Add(String, String),
    /// To the JSON in the `payload` field.
    Payload(Mutation),
}

fn form_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => text(),
        1 => junk().prop_map(|j| j.json()),
        1 => (0usize..50_000).prop_map(|n| "y".repeat(n)),
    ]
}

pub(crate) fn form_mutations() -> impl Strategy<Value = Vec<FormMutation>> {
    let one = prop_oneof![
        2 => byte_mutation().prop_map(FormMutation::Bytes),
        1 => any::<Index>().prop_map(FormMutation::Drop),
        2 => (any::<Index>(), form_value()).prop_map(|(i, v)| FormMutation::Set(i, v)),
        1 => any::<Index>().prop_map(FormMutation::Double),
        1 => ("\\PC{0,12}", form_value()).prop_map(|(k, v)| FormMutation::Add(k, v)),
        3 => mutation().prop_map(FormMutation::Payload),
    ];
    prop::collection::vec(one, 0..5)
}

fn encode(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                form_urlencoded::byte_serialize(k).collect::<String>(),
                form_urlencoded::byte_serialize(v).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

pub(crate) fn broken_form(seed: &[(&str, &str)], ms: &[FormMutation]) -> Vec<u8> {
    let fields: Vec<(Vec<u8>, Vec<u8>)> = seed
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let mut body = encode(&fields);
    for m in ms {
        if let FormMutation::Bytes(m) = m {
            mutate(&mut body, m);
            continue;
        }
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned().into_bytes(), v.into_owned().into_bytes()))
            .collect();
        let n = fields.len();
        match m {
            FormMutation::Bytes(_) => {}
            FormMutation::Drop(i) => {
                if n > 0 {
                    fields.remove(i.index(n));
                }
            }
            FormMutation::Set(i, value) => {
                if n > 0 {
                    fields[i.index(n)].1 = value.clone().into_bytes();
                }
            }
            FormMutation::Double(i) => {
                if n > 0 {
                    fields.push(fields[i.index(n)].clone());
                }
            }
            FormMutation::Add(k, v) => {
                fields.push((k.clone().into_bytes(), v.clone().into_bytes()))
            }
            FormMutation::Payload(m) => {
                if let Some((_, payload)) = fields.iter_mut().find(|(k, _)| k == b"payload") {
                    mutate(payload, m);
                }
            }
        }
        body = encode(&fields);
    }
    body
}

// ---------------------------------------------------------------------------------------
// Alert webhooks.

const SECRET: &str = "webhook-secret";

pub(crate) const ALERTMANAGER: &str = r#"{"receiver":"lifeboat","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"RegionDown","region":"region-b"},"annotations":{"summary":"region b is down"},"startsAt":"2026-11-25T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom/graph","fingerprint":"a1b2"},{"labels":{"alertname":"Other"},"annotations":{"description":"d"},"startsAt":"2026-11-25T10:00:00Z","fingerprint":""}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","version":"4","groupKey":"{}:{alertname=\"RegionDown\"}","truncatedAlerts":0}"#;

pub(crate) const GRAFANA: &str = r#"{"receiver":"lifeboat","status":"resolved","orgId":1,"alerts":[{"status":"resolved","labels":{"alertname":"HighLatency","grafana_folder":"shop"},"annotations":{"description":"p99 over 2s"},"startsAt":"2026-11-25T10:00:00Z","endsAt":"2026-11-25T10:05:00Z","generatorURL":"http://grafana/alerting/grafana/x/view","fingerprint":"f00d","silenceURL":"http://grafana/s","values":{"B":2.5},"valueString":"[ var='B' value=2.5 ]"}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://grafana/","version":"1","groupKey":"{}:{}","truncatedAlerts":0,"title":"[RESOLVED]","state":"ok","message":"resolved"}"#;

pub(crate) const PAGERDUTY: &str = r#"{"event":{"id":"01DEN","event_type":"incident.triggered","resource_type":"incident","occurred_at":"2026-11-25T10:00:00.000Z","agent":null,"client":null,"data":{"id":"PGR0VU2","type":"incident","html_url":"https://acme.pagerduty.com/incidents/PGR0VU2","number":2,"status":"triggered","incident_key":"d3640fbd","title":"Region b is down","service":{"id":"PF9KMXH","summary":"petstore-api","type":"service_reference"},"priority":{"summary":"P1"},"urgency":"high"}}}"#;

const DATADOG: &str = r#"{"alert_id":"1234","title":"[Triggered] petstore p99","alert_transition":"Triggered","priority":"P1","tags":"env:prod,service:petstore-api,region:region-b","body":"p99 over 2s","link":"https://app.datadoghq.com/monitors/1234","date":1800000000}"#;

const ZABBIX: &str = r#"{"events":[{"status":"PROBLEM","name":"disk full","host":"db1","tags":[{"tag":"service","value":"petstore"},"env=prod",3]},{"status":"OK","host":7,"tags":{"team":"sre","n":2}}]}"#;

const ALERT_BODIES: &[&str] = &[ALERTMANAGER, GRAFANA, PAGERDUTY, DATADOG, ZABBIX];

/// Generic sources of both shapes: one alert per body, verified over the body; and a list
/// of alerts, verified over `timestamp:body`.
fn generic(secret: &str) -> Vec<GenericSource> {
    let datadog = GenericSource {
        name: "datadog".into(),
        pos: Default::default(),
        secret: secret.into(),
        signature_header: "x-lifeboat-signature".into(),
        timestamp_header: None,
        alerts: None,
        alertname: Some("/title".into()),
        status: "/alert_transition".into(),
        firing: vec!["Triggered".into(), "Re-Triggered".into()],
        resolved: vec!["Recovered".into()],
        fingerprint: Some("/alert_id".into()),
        labels: [("priority".to_string(), "/priority".to_string())]
            .into_iter()
            .collect(),
        tags: vec!["/tags".into()],
        summary: Some("/body".into()),
        link: Some("/link".into()),
    };
    let zabbix = GenericSource {
        name: "zabbix".into(),
        timestamp_header: Some("x-lifeboat-timestamp".into()),
        alerts: Some("/events".into()),
        alertname: Some("/name".into()),
        status: "/status".into(),
        firing: vec!["PROBLEM".into()],
        resolved: vec!["OK".into()],
        fingerprint: None,
        labels: [("host".to_string(), "/host".to_string())]
            .into_iter()
            .collect(),
        summary: None,
        link: None,
        ..datadog.clone()
    };
    vec![datadog, zabbix]
}

fn every_source() -> Vec<Arc<dyn AlertSource>> {
    let mut all = builtin();
    for g in generic(SECRET) {
        all.push(Arc::new(Generic::new(g)));
    }
    all
}

/// The headers any source reads.
const HEADER_NAMES: &[&str] = &[
    "authorization",
    "x-pagerduty-signature",
    "x-grafana-alerting-signature",
    "x-grafana-alerting-timestamp",
    "x-lifeboat-signature",
    "x-lifeboat-timestamp",
];

/// What a request sends in one header.
#[derive(Clone, Debug)]
enum Header {
    Absent,
    /// What a sender holding the secret sends.
    Right,
    /// The same in its other form: basic auth, among several signatures, over the body
    /// alone or over `timestamp:body`, in milliseconds.
    RightOther,
    /// The right value with one character changed.
    Spoilt(Index, char),
    Wrong(String),
}

fn header() -> impl Strategy<Value = Header> {
    prop_oneof![
        2 => Just(Header::Absent),
        3 => Just(Header::Right),
        2 => Just(Header::RightOther),
        1 => (any::<Index>(), any::<char>()).prop_map(|(i, c)| Header::Spoilt(i, c)),
        2 => prop_oneof![
            "[ -~]{0,80}",
            "(Bearer|Basic|bearer|Token|v1=|sha256=|v0=)[ -~]{0,70}",
            Just("-9223372036854775808".to_string()),
            Just("99999999999999999999".to_string()),
            Just("1e9".to_string()),
        ]
        .prop_map(Header::Wrong),
    ]
}

struct Sent(Vec<(&'static str, String)>);

impl Headers for Sent {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn spoil(right: &str, at: Index, c: char) -> String {
    let mut chars: Vec<char> = right.chars().collect();
    if !chars.is_empty() {
        let i = at.index(chars.len());
        chars[i] = c;
    }
    chars.into_iter().collect()
}

fn sent(choices: &[Header], body: &[u8], now: i64) -> Sent {
    use base64::Engine as _;
    let secret = SECRET.as_bytes();
    let ts = now.to_string();
    let plain = signing::sign(secret, &[body]);
    let timed = signing::sign(secret, &[ts.as_bytes(), b":", body]);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("am:{SECRET}"));
    let mut out = Vec::new();
    for (name, choice) in HEADER_NAMES.iter().zip(choices) {
        let (right, other) = match *name {
            "authorization" => (format!("Bearer {SECRET}"), format!("Basic {basic}")),
            "x-pagerduty-signature" => (format!("v1={plain}"), format!("v1=00ff, v1={plain}")),
            "x-grafana-alerting-signature" => (timed.clone(), plain.clone()),
            "x-lifeboat-signature" => (format!("sha256={plain}"), timed.clone()),
            _ => (ts.clone(), now.saturating_mul(1000).to_string()),
        };
        let value = match choice {
            Header::Absent => continue,
            Header::Right => right,
            Header::RightOther => other,
            Header::Spoilt(at, c) => spoil(&right, *at, *c),
            Header::Wrong(w) => w.clone(),
        };
        out.push((*name, value));
    }
    Sent(out)
}

fn now_secs() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => Just(1_800_000_000i64),
        1 => Just(0i64),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => any::<i64>(),
    ]
}

/// The receivers as a service holds them: one with every secret set, one open to all.
struct Receivers {
    locked: Sources,
    open: Sources,
    names: Vec<(String, bool)>,
}

fn receivers() -> &'static Receivers {
    static RECEIVERS: OnceLock<Receivers> = OnceLock::new();
    RECEIVERS.get_or_init(|| {
        let names: Vec<(String, bool)> = builtin()
            .iter()
            .map(|s| (s.name().to_string(), false))
            .chain(generic(SECRET).into_iter().map(|g| (g.name, true)))
            .collect();
        let locked = AlertSettings {
            secrets: builtin()
                .iter()
                .map(|s| (s.name().to_string(), SecretString::from(SECRET)))
                .collect(),
            ..AlertSettings::default()
        };
        let open = AlertSettings {
            open: names.iter().map(|(n, _)| n.clone()).collect(),
            ..AlertSettings::default()
        };
        Receivers {
            locked: Sources::new(&locked, &generic(SECRET), &|_| None)
                .expect("every source with its secret"),
            // Unset references: the open receivers take requests without one.
            open: Sources::new(&open, &generic("${env:LIFEBOAT_FUZZ_NEVER_SET}"), &|_| None)
                .expect("every source open"),
            names,
        }
    })
}

fn said(what: &str, why: &str) -> Result<(), TestCaseError> {
    prop_assert!(!why.trim().is_empty(), "{} refused without a reason", what);
    Ok(())
}

/// Every source's `verify`, `parse` and `recognises` on one request, and both receivers.
fn every_alert_source_answers(body: &[u8], headers: &Sent, now: i64) -> Result<(), TestCaseError> {
    let request = Request {
        headers,
        body,
        now_secs: now,
    };
    let json = serde_json::from_slice::<Value>(body).ok();
    for source in every_source() {
        if let Err(e) = source.verify(SECRET.as_bytes(), &request) {
            said(source.name(), &e.to_string())?;
        }
        if let Err(e) = source.parse(&request) {
            said(source.name(), &e)?;
        }
        if let Some(v) = &json {
            source.recognises(v);
        }
    }
    let r = receivers();
    if let Some(v) = &json {
        r.locked.detect(v);
    }
    for (name, generic) in &r.names {
        for (which, sources) in [("locked", &r.locked), ("open", &r.open)] {
            match sources.receive(name, *generic, headers, body, now) {
                Ok(_) => {}
                Err(e @ Rejected::Unknown(_)) => {
                    return Err(TestCaseError::fail(format!("{which} {name}: {e}")));
                }
                Err(Rejected::Unauthorized(why) | Rejected::BadBody(why)) => said(name, &why)?,
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn alert_sources_answer_arbitrary_bytes(
        body in prop::collection::vec(any::<u8>(), 0..512),
        headers in prop::collection::vec(header(), HEADER_NAMES.len()),
        now in now_secs(),
    ) {
        let headers = sent(&headers, &body, now);
        every_alert_source_answers(&body, &headers, now)?;
    }
}

proptest! {
    // Where most of the parsing is: the cheapest cases, and the most of them.
    #![proptest_config(config(512))]

    #[test]
    fn alert_sources_answer_broken_bodies(
        seed in prop::sample::select(ALERT_BODIES),
        ms in mutations(),
        headers in prop::collection::vec(header(), HEADER_NAMES.len()),
        now in now_secs(),
    ) {
        let body = broken(seed, &ms);
        let headers = sent(&headers, &body, now);
        every_alert_source_answers(&body, &headers, now)?;
    }
}

#[test]
fn the_alert_seeds_are_read() {
    let sources = every_source();
    let read = |name: &str, body: &str| {
        let source = sources
            .iter()
            .find(|s| s.name() == name)
            .expect("a source of that name");
        let request = Request {
            headers: &Sent(Vec::new()),
            body: body.as_bytes(),
            now_secs: 0,
        };
        source.parse(&request).expect(name).len()
    };
    // Broken versions of bodies that never parsed would test only the first error.
    assert_eq!(read("alertmanager", ALERTMANAGER), 2);
    assert_eq!(read("grafana", GRAFANA), 1);
    assert_eq!(read("pagerduty", PAGERDUTY), 1);
    assert_eq!(read("datadog", DATADOG), 1);
    assert_eq!(read("zabbix", ZABBIX), 2);
}

// ---------------------------------------------------------------------------------------
// Chat.

pub(crate) const RUN: &str = "0196b7a2-7d3c-7c4e-9a7e-0a1b2c3d4e5f";

pub(crate) fn discord_seeds() -> &'static [String] {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        [
            serde_json::json!({
                "id": "1", "type": 2, "token": "tok", "guild_id": "81384788765712384",
                "channel_id": "41771983423143937",
                "member": { "user": { "id": "53908232506183680" }, "roles": ["123", 456] },
                "data": { "name": "dr", "options": [{ "name": "failover", "type": 1, "options": [
                    { "name": "group", "type": 3, "value": "petstore" },
                    { "name": "dry_run", "type": 5, "value": true },
                    { "name": "reason", "type": 3, "value": "region b is down" }
                ]}]}
            }),
            serde_json::json!({
                "id": 1234567890123456789u64, "type": 2, "token": "tok",
                "user": { "id": 53908232506183680u64 },
                "data": { "name": "dr", "options": [{ "name": "skip", "type": 1, "options": [
                    { "name": "run", "type": 3, "value": RUN },
                    { "name": "stage", "type": 3, "value": "dial" },
                    { "name": "reason", "type": 3, "value": "done by hand" }
                ]}]}
            }),
            serde_json::json!({
                "id": "2", "type": 3, "token": "tok", "channel_id": "1",
                "member": { "user": { "id": "5" }, "roles": [] },
                "data": { "custom_id": format!("approve:{RUN}/dial") }
            }),
            serde_json::json!({ "type": 1 }),
        ]
        .iter()
        .map(Value::to_string)
        .collect()
    })
}

/// A button's id and target, as every platform carries them.
fn pressed(id: &str, target: &str) -> Result<(), TestCaseError> {
    Button::from_id(id);
    if let Err(e) = target.parse::<Target>() {
        said("a button's target", &e)?;
    }
    Ok(())
}

fn discord_answers(body: &[u8], signature: &str, timestamp: &str) -> Result<(), TestCaseError> {
    // The verifier `DiscordBot::verify` holds, then its freshness check.
    let key = crate::common::discord::key();
    let verifier =
        serenity::interactions_endpoint::Verifier::try_new(key.verifying_key().to_bytes())
            .expect("the test key");
    let _ = verifier.verify(signature, timestamp, body);
    if let Err(e) = signing::fresh(timestamp, 1_800_000_000) {
        said("a Discord timestamp", &e.to_string())?;
    }
    match serde_json::from_slice::<Interaction>(body) {
        Err(e) => said("a Discord interaction", &e.to_string())?,
        Ok(i) => {
            i.person();
            if let Some(data) = &i.data {
                if let Err(e) = interaction::words(data) {
                    said("a Discord command", &e)?;
                }
                if let Some((id, target)) =
                    data.custom_id.as_deref().and_then(|c| c.split_once(':'))
                {
                    pressed(id, target)?;
                }
            }
        }
    }
    Ok(())
}

/// A form refused by `form`: a 400 whose body says why.
fn form_refused(
    (status, Json(body)): (axum::http::StatusCode, Json<Value>),
) -> Result<(), TestCaseError> {
    prop_assert_eq!(status, axum::http::StatusCode::BAD_REQUEST);
    said("a form", body["error"].as_str().unwrap_or(""))
}

pub(crate) const SLACK_COMMAND: &[(&str, &str)] = &[
    ("token", "xyzz0WbapA4vBCDEFasx0q6G"),
    ("team_id", "T1DC2JH3J"),
    ("team_domain", "testteamnow"),
    ("channel_id", "G8PSS9T3V"),
    ("channel_name", "foobar"),
    ("user_id", "U2CERLKJA"),
    ("user_name", "roadrunner"),
    ("command", "/dr"),
    (
        "text",
        "failover petstore --dry-run --reason region b is down",
    ),
    (
        "response_url",
        "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN",
    ),
    (
        "trigger_id",
        "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
    ),
];

pub(crate) fn slack_payload() -> &'static str {
    static PAYLOAD: OnceLock<String> = OnceLock::new();
    PAYLOAD.get_or_init(|| {
        serde_json::json!({
            "type": "block_actions",
            "user": { "id": "U1", "username": "alice" },
            "team": { "id": "T1" },
            "trigger_id": "1.2.3",
            "channel": { "id": "C1" },
            "response_url": "https://hooks.slack.com/actions/x",
            "actions": [
                { "action_id": "approve", "value": RUN, "action_ts": "1.2" },
                { "action_id": "skip", "value": format!("{RUN}/dial"), "action_ts": "1.3" }
            ]
        })
        .to_string()
    })
}

fn slack_answers(
    body: &[u8],
    signature: &str,
    timestamp: Option<&str>,
) -> Result<(), TestCaseError> {
    if let Err(e) = slack_verify::verify(
        SECRET.as_bytes(),
        timestamp,
        Some(signature),
        body,
        1_800_000_000,
    ) {
        said("a Slack signature", &e.to_string())?;
    }
    match form::<SlashCommand>(body) {
        Ok(_) => {}
        Err(refused) => form_refused(refused)?,
    }
    // `/slack/interactions`: the JSON in the `payload` field.
    let payload = form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned());
    if let Some(payload) = payload {
        match serde_json::from_str::<SlackInteraction>(&payload) {
            Err(e) => said("a Slack interaction", &e.to_string())?,
            Ok(i) => {
                for action in &i.actions {
                    pressed(&action.action_id, action.value.as_deref().unwrap_or(""))?;
                }
            }
        }
    }
    Ok(())
}

pub(crate) const MATTERMOST_COMMAND: &[(&str, &str)] = &[
    ("token", "mm-token"),
    ("team_id", "team1"),
    ("team_domain", "acme"),
    ("channel_id", "chan1"),
    ("channel_name", "town-square"),
    ("user_id", "user1"),
    ("user_name", "alice"),
    ("command", "/dr"),
    ("text", "status petstore"),
];

fn mattermost_press() -> &'static str {
    static PRESS: OnceLock<String> = OnceLock::new();
    PRESS.get_or_init(|| {
        serde_json::json!({
            "user_id": "user1", "user_name": "alice", "channel_id": "chan1", "team_id": "team1",
            "context": { "button": "approve", "target": RUN, "signature": "00ff" }
        })
        .to_string()
    })
}

fn mattermost_answers(command: &[u8], press: &[u8]) -> Result<(), TestCaseError> {
    // The Mattermost route reads its form as `form` does: fields as strings, into the type.
    match form::<MattermostCommand>(command) {
        Ok(_) => {}
        Err(refused) => form_refused(refused)?,
    }
    match serde_json::from_slice::<Press>(press) {
        Err(e) => said("a Mattermost press", &e.to_string())?,
        Ok(p) => {
            let field = |name: &str| p.context.get(name).and_then(Value::as_str).unwrap_or("");
            let actions = Actions::new(
                "http://lifeboat.invalid/mattermost/actions".into(),
                &SecretString::from("bot-token"),
            );
            actions.verify(field("button"), field("target"), field("signature"));
            pressed(field("button"), field("target"))?;
        }
    }
    Ok(())
}

fn signed_discord(body: &[u8], timestamp: &str) -> String {
    let message = [timestamp.as_bytes(), body].concat();
    hex::encode(crate::common::discord::key().sign(&message).to_bytes())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn discord_interactions_answer_arbitrary_bytes(
        body in prop::collection::vec(any::<u8>(), 0..512),
        signature in "[0-9a-f]{0,130}",
        timestamp in prop_oneof![Just("1800000000".to_string()), "\\PC{0,24}"],
    ) {
        discord_answers(&body, &signature, &timestamp)?;
    }

    #[test]
    fn discord_interactions_answer_broken_bodies(
        seed in any::<Index>(),
        ms in mutations(),
        spoilt in prop::option::weighted(0.3, (any::<Index>(), any::<char>())),
        timestamp in prop_oneof![3 => Just("1800000000".to_string()), 1 => "\\PC{0,24}"],
    ) {
        let seed: &String = seed.get(discord_seeds());
        let body = broken(seed, &ms);
        let mut signature = signed_discord(&body, &timestamp);
        if let Some((at, c)) = spoilt {
            signature = spoil(&signature, at, c);
        }
        discord_answers(&body, &signature, &timestamp)?;
    }

    #[test]
    fn slack_requests_answer_arbitrary_bytes(
        body in prop::collection::vec(any::<u8>(), 0..512),
        signature in "(v0=)?[0-9a-f]{0,70}",
        timestamp in prop::option::of("\\PC{0,24}"),
    ) {
        slack_answers(&body, &signature, timestamp.as_deref())?;
    }

    #[test]
    fn slack_requests_answer_broken_forms(
        interaction in any::<bool>(),
        ms in form_mutations(),
        timestamp in prop::option::weighted(0.8, prop_oneof![3 => Just("1800000000".to_string()), 1 => "\\PC{0,24}"]),
    ) {
        let payload = slack_payload();
        let seed: &[(&str, &str)] = if interaction { &[("payload", payload)] } else { SLACK_COMMAND };
        let body = broken_form(seed, &ms);
        let signature = slack_verify::sign(SECRET.as_bytes(), 1_800_000_000, &body);
        slack_answers(&body, &signature, timestamp.as_deref())?;
    }

    #[test]
    fn mattermost_requests_answer_broken_and_arbitrary_bodies(
        form_ms in form_mutations(),
        press_ms in mutations(),
        arbitrary in prop::option::weighted(0.25, prop::collection::vec(any::<u8>(), 0..512)),
    ) {
        let (command, press) = match arbitrary {
            Some(bytes) => (bytes.clone(), bytes),
            None => (broken_form(MATTERMOST_COMMAND, &form_ms), broken(mattermost_press(), &press_ms)),
        };
        mattermost_answers(&command, &press)?;
    }
}

#[test]
fn the_chat_seeds_are_read() {
    for seed in discord_seeds() {
        let i: Interaction = serde_json::from_str(seed).expect("a Discord seed");
        if let Some(data) = i.data.as_ref().filter(|d| d.name.is_some()) {
            interaction::words(data).expect("a Discord seed's words");
        }
    }
    let command = broken_form(SLACK_COMMAND, &[]);
    let c: SlashCommand = form(&command).expect("the Slack command seed");
    assert_eq!(
        c.text,
        "failover petstore --dry-run --reason region b is down"
    );
    let i: SlackInteraction = serde_json::from_str(slack_payload()).expect("the Slack payload");
    assert_eq!(i.actions.len(), 2);
    let c: MattermostCommand =
        form(&broken_form(MATTERMOST_COMMAND, &[])).expect("the Mattermost command seed");
    assert_eq!(c.text, "status petstore");
    serde_json::from_str::<Press>(mattermost_press()).expect("the Mattermost press seed");
}

// ---------------------------------------------------------------------------------------
// Workflows directories.

/// The repository's own workflows directory: every file a directory can hold, valid.
fn workflow_seeds() -> &'static [(String, String)] {
    static SEEDS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
        let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .expect("the workflows directory")
            .map(|e| {
                let path = e.expect("a directory entry").path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .expect("a file name")
                    .to_string();
                let text = std::fs::read_to_string(&path).expect("a workflow file");
                (name, text)
            })
            .filter(|(name, _)| name.ends_with(".yaml"))
            .collect();
        files.sort();
        files
    })
}

/// One change to a YAML file: to its bytes, to a line, or to its values (then written out
/// as JSON, which YAML reads too).
#[derive(Clone, Debug)]
enum YamlMutation {
    Bytes(Mutation),
    Line(Index, LineEdit),
    Values(Mutation),
}

#[derive(Clone, Debug)]
enum LineEdit {
    Delete,
    Double,
    SwapWithNext,
    Indent(u8),
    Dedent(u8),
    /// Its value replaced.
    Value(Junk),
    /// A member inserted before it, at its indentation.
    Before(String, Junk),
    /// Its indentation as a tab.
    Tab,
}

fn yaml_mutations() -> impl Strategy<Value = Vec<YamlMutation>> {
    let edit = prop_oneof![
        1 => Just(LineEdit::Delete),
        1 => Just(LineEdit::Double),
        1 => Just(LineEdit::SwapWithNext),
        1 => (1u8..8).prop_map(LineEdit::Indent),
        1 => (1u8..8).prop_map(LineEdit::Dedent),
        4 => junk().prop_map(LineEdit::Value),
        2 => (prop_oneof![
                Just("after".to_string()),
                Just("agent".to_string()),
                Just("approval".to_string()),
                Just("spec".to_string()),
                Just("retry".to_string()),
                Just("provider".to_string()),
                Just("<<".to_string()),
                "\\PC{0,10}",
            ], junk())
            .prop_map(|(k, j)| LineEdit::Before(k, j)),
        1 => Just(LineEdit::Tab),
    ];
    let one = prop_oneof![
        2 => byte_mutation().prop_map(YamlMutation::Bytes),
        4 => (any::<Index>(), edit).prop_map(|(i, e)| YamlMutation::Line(i, e)),
        3 => value_mutation().prop_map(YamlMutation::Values),
    ];
    prop::collection::vec(one, 1..5)
}

fn edit_line(text: &str, at: Index, edit: &LineEdit) -> String {
    let mut lines: Vec<String> = text.split('\n').map(String::from).collect();
    let i = at.index(lines.len());
    let line = lines[i].clone();
    let indent: String = line.chars().take_while(|c| *c == ' ').collect();
    match edit {
        LineEdit::Delete => {
            lines.remove(i);
        }
        LineEdit::Double => lines.insert(i, line),
        LineEdit::SwapWithNext => {
            if i + 1 < lines.len() {
                lines.swap(i, i + 1);
            }
        }
        LineEdit::Indent(n) => lines[i] = " ".repeat(usize::from(*n)) + &line,
        LineEdit::Dedent(n) => {
            let cut = indent.len().min(usize::from(*n));
            lines[i] = line[cut..].to_string();
        }
        LineEdit::Value(junk) => {
            let value = junk.yaml();
            lines[i] = match line.split_once(": ") {
                Some((key, _)) => format!("{key}: {value}"),
                None if line.trim_start().starts_with("- ") => format!("{indent}- {value}"),
                None => format!("{line} {value}"),
            };
        }
        LineEdit::Before(key, junk) => lines.insert(i, format!("{indent}{key}: {}", junk.yaml())),
        LineEdit::Tab => lines[i] = format!("\t{}", line.trim_start_matches(' ')),
    }
    lines.join("\n")
}

fn broken_yaml(seed: &str, ms: &[YamlMutation]) -> Vec<u8> {
    let mut body = seed.as_bytes().to_vec();
    for m in ms {
        match m {
            YamlMutation::Bytes(m) => mutate(&mut body, m),
            YamlMutation::Line(at, edit) => {
                body = edit_line(&String::from_utf8_lossy(&body), *at, edit).into_bytes();
            }
            YamlMutation::Values(m) => {
                let Ok(text) = std::str::from_utf8(&body) else {
                    continue;
                };
                if let Ok(mut v) = serde_saphyr::from_str::<Value>(text) {
                    body = revalued(&mut v, m);
                }
            }
        }
    }
    body
}

/// A worker thread's stack (tokio's and a test's): the least a catalog is loaded on.
const WORKER_STACK: usize = 2 << 20;

/// Runs `f` on a thread of its own with a worker's stack: a panic is this case's failure,
/// and a file nested deeper than the loader can read on such a stack (its depth limit
/// keeps it well within) would show here.
fn on_a_workers_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, TestCaseError> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(WORKER_STACK)
            .spawn_scoped(s, f)
            .expect("a thread")
            .join()
    })
    .map_err(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        TestCaseError::fail(format!("panicked: {why}"))
    })
}

/// The lines of a file as YAML counts them: each ends at `\n`, `\r\n` or a lone `\r`.
fn yaml_lines(text: &[u8]) -> usize {
    let mut bytes = text.iter().peekable();
    let mut lines = 1;
    while let Some(b) = bytes.next() {
        match b {
            b'\n' => lines += 1,
            b'\r' => {
                lines += 1;
                bytes.next_if_eq(&&b'\n');
            }
            _ => {}
        }
    }
    lines
}

/// Loads a directory as `lifeboat validate` does: a catalog, or diagnostics that each say
/// where, in a file of the directory, on a line of that file.
fn loads_or_says_where(dir: &Path) -> Result<(), TestCaseError> {
    let loaded =
        on_a_workers_stack(|| lifeboat::app::catalog_at(dir, &Registry::builtin()).map(|_| ()))?;
    let Err(diagnostics) = loaded else {
        return Ok(());
    };
    prop_assert!(!diagnostics.is_empty(), "refused with no diagnostic");
    for d in &diagnostics {
        prop_assert!(
            d.file.starts_with(dir) && d.file != dir,
            "{} is not about a file of the directory",
            d
        );
        prop_assert!(d.line >= 1 && d.column >= 1, "{} is not located", d);
        let text = std::fs::read(&d.file).expect("the file a diagnostic names");
        let lines = yaml_lines(&text);
        prop_assert!(
            usize::try_from(d.line).is_ok_and(|line| line <= lines),
            "{} is past the end of its file ({} lines)",
            d,
            lines
        );
        prop_assert!(!d.message.trim().is_empty(), "{} says nothing", d);
    }
    Ok(())
}

/// The seeds in a fresh directory, one of them replaced (file name, text) if asked.
fn directory_with(replaced: Option<(&str, &[u8])>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, seed) in workflow_seeds() {
        let content = match replaced {
            Some((file, text)) if file == name => text,
            _ => seed.as_bytes(),
        };
        std::fs::write(dir.path().join(name), content).expect("write a workflow file");
    }
    dir
}

proptest! {
    #![proptest_config(config(160))]

    #[test]
    fn workflow_directories_load_or_say_where_despite_broken_yaml(
        file in any::<Index>(),
        ms in yaml_mutations(),
    ) {
        let (name, seed) = file.get(workflow_seeds());
        // Reading a broken file back as values nests as deep as the file does.
        let text = on_a_workers_stack(|| broken_yaml(seed, &ms))?;
        let dir = directory_with(Some((name, &text)));
        loads_or_says_where(dir.path())?;
    }

    #[test]
    fn workflow_directories_load_or_say_where_despite_arbitrary_bytes(
        file in any::<Index>(),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let (name, _) = file.get(workflow_seeds());
        let dir = directory_with(Some((name, &bytes)));
        loads_or_says_where(dir.path())?;
    }
}

#[test]
fn the_workflow_seeds_load() {
    assert!(
        workflow_seeds().len() >= 4,
        "groups, routes, targets and workflows"
    );
    let dir = directory_with(None);
    lifeboat::app::catalog_at(dir.path(), &Registry::builtin()).expect("the seeds are valid");
}
