//! The chat command grammar against arbitrary text, against its own words in any order,
//! and against whatever Discord's `/dr` options can carry once read back into words. Every
//! platform hands this parser whatever someone typed, so it must answer every input with a
//! command or with a refusal that shows the usage, and never panic.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{USAGE, parse};
use crate::chat::discord::interaction::{Data, words};

/// The grammar's verbs, then the words that follow them, with a few near misses, so
/// that random text reaches past the first word.
const VERBS: &[&str] = &[
    "failover", "failback", "drill", "status", "runs", "groups", "plan", "locks", "agents",
    "resume", "retry", "skip", "approve", "reject", "cancel", "abort", "help", "explode",
];
const WORDS: &[&str] = &[
    "--dry-run",
    "--reason",
    "--force",
    "--",
    "-",
    "\"",
    "\"\"",
    "petstore",
    "failback",
    "sideways",
    "0196b7a2-7d3c-7c4e-9a7e-0a1b2c3d4e5f",
    "dial",
    "é",
    "\u{202e}",
];

/// A verb and its words, or text of any kind, between runs of any whitespace.
fn sentence() -> impl Strategy<Value = String> {
    let verb = prop_oneof![
        4 => prop::sample::select(VERBS).prop_map(String::from),
        1 => "\\PC{0,12}",
    ];
    let word = prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(String::from),
        1 => prop::sample::select(VERBS).prop_map(String::from),
        1 => "\\PC{0,12}",
    ];
    let gap = || prop::sample::select(&[" ", "  ", "\t", "\n", "\u{a0}", "\u{3000}", " \r\n "][..]);
    (gap(), verb, prop::collection::vec((gap(), word), 0..6)).prop_map(|(lead, verb, rest)| {
        let mut text = format!("{lead}{verb}");
        for (gap, word) in rest {
            text.push_str(gap);
            text.push_str(&word);
        }
        text
    })
}

/// What the grammar answers: a command, or a refusal ending with the usage.
fn answered(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = parse(text) {
        prop_assert!(
            e.len() > USAGE.len() && e.ends_with(USAGE),
            "{:?} was refused without saying why and how: {:?}",
            text,
            e
        );
    }
    Ok(())
}

/// A value of any JSON type, as an option may carry.
fn value() -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(
        0.9,
        prop_oneof![
            4 => prop::sample::select(WORDS).prop_map(|w| json!(w)),
        2 => prop::sample::select(VERBS).prop_map(|w| json!(w)),
            2 => "\\PC{0,20}".prop_map(Value::String),
            1 => any::<bool>().prop_map(Value::Bool),
            1 => any::<i64>().prop_map(|n| json!(n)),
            1 => any::<f64>().prop_map(|f| json!(f)),
            1 => Just(Value::Null),
            1 => Just(json!(["a", 1, null])),
            1 => Just(json!({"a": {"b": []}})),
        ],
    )
}

/// `/dr` data as Discord would send it, or nearly: known and unknown subcommands and
/// options, with values of every type.
fn data() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        6 => prop::sample::select(VERBS).prop_map(String::from),
        1 => "\\PC{0,10}",
    ];
    let option_name = prop_oneof![
        8 => prop::sample::select(
            &[
                "group", "run", "stage", "reason", "dry_run", "force", "target", "action",
            ][..],
        )
        .prop_map(String::from),
        1 => "\\PC{0,10}",
    ];
    let option = (option_name, value()).prop_map(|(name, value)| match value {
        Some(v) => json!({ "name": name, "type": 3, "value": v }),
        None => json!({ "name": name, "type": 3 }),
    });
    (
        prop::sample::select(&["dr", "dr", "dr", "other", ""][..]),
        prop::option::weighted(0.9, name),
        prop::collection::vec(option, 0..6),
    )
        .prop_map(|(command, sub, options)| match sub {
            Some(sub) => json!({
                "name": command,
                "options": [{ "name": sub, "type": 1, "options": options }],
            }),
            None => json!({ "name": command }),
        })
}

/// A failure prints its smallest input; nothing is written into the source tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_text_is_a_command_or_a_refusal_with_the_usage(text in "\\PC{0,120}") {
        answered(&text)?;
    }

    #[test]
    fn discord_options_read_back_into_words_the_grammar_answers(data in data()) {
        let data: Data = serde_json::from_value(data).map_err(|e| {
            TestCaseError::fail(format!("the strategy made data that does not read: {e}"))
        })?;
        match words(&data) {
            Ok(text) => answered(&text)?,
            Err(e) => prop_assert!(!e.trim().is_empty(), "an empty refusal"),
        }
    }
}

proptest! {
    // Each case takes microseconds, and the flags' corners are a few words deep.
    #![proptest_config(config(4096))]

    #[test]
    fn the_grammars_words_in_any_order_and_spacing(text in sentence()) {
        answered(&text)?;
        // Chat clients pad, wrap and double spaces: only the words may count.
        let plain = text.split_whitespace().collect::<Vec<_>>().join(" ");
        prop_assert_eq!(parse(&text), parse(&plain));
    }
}
