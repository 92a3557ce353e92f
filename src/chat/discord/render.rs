//! A card as a Discord message: the title and stages in an embed, the buttons in an action
//! row. Each button's custom id is `ACTION:RUN`.

use serde_json::{Value, json};

use super::super::card::{Button, Card, Tone};
use super::super::offer_card::OfferCard;
use super::super::text;
use crate::clock::short_duration;
use crate::domain::{RunId, RunState};

/// Discord's colours: green, red, grey, blurple.
fn colour(state: RunState) -> u32 {
    match state {
        RunState::Succeeded => 0x2e_cc71,
        RunState::Failed => 0xe7_4c3c,
        RunState::Cancelled => 0x95_a5a6,
        _ => 0x58_65f2,
    }
}

pub fn card(card: &Card) -> Value {
    let stages: Vec<String> = card
        .stages
        .iter()
        .map(|s| {
            let mut line = format!("{} `{}` ({}) {}", s.mark(), s.name, s.agent, s.status());
            if s.attempts > 1 {
                line.push_str(&format!(" · attempt {}", s.attempts));
            }
            if let Some(ms) = s.elapsed {
                line.push_str(&format!(" · {}", short_duration(ms)));
            }
            line
        })
        .collect();
    let mut description = card.context.join("\n");
    description.push_str("\n\n");
    description.push_str(&stages.join("\n"));
    if !card.decisions.is_empty() {
        description.push_str("\n\n");
        description.push_str(&card.decisions.join("\n"));
    }
    if let Some(total) = card.total {
        description.push_str(&format!(
            "\n\nTotal recovery time: **{}**",
            short_duration(total)
        ));
    }
    let components = row(&card.buttons, card.run);
    json!({
        "content": "",
        "embeds": [{
            "title": format!("{}: {}", card.title, text::state_word(card.state)),
            "description": description,
            "color": colour(card.state),
            "footer": { "text": format!("run {}", card.run) },
        }],
        "components": components,
        // People named in the card are not pinged each time it changes.
        "allowed_mentions": { "parse": [] },
    })
}

/// An offer's card: the question or countdown in an embed, its buttons in a row.
pub fn offer(card: &OfferCard) -> Value {
    let colour = if card.settled { 0x95_a5a6 } else { 0xf3_9c12 };
    json!({
        "content": "",
        "embeds": [{
            "title": card.title,
            "description": card.lines.join("\n"),
            "color": colour,
            "footer": { "text": format!("offer {}", card.offer) },
        }],
        "components": row(&card.buttons, card.offer),
        "allowed_mentions": { "parse": [] },
    })
}

/// Buttons in one action row (none if there are no buttons); custom ids `ACTION:ID`.
fn row(buttons: &[Button], id: RunId) -> Vec<Value> {
    let buttons: Vec<Value> = buttons
        .iter()
        .map(|b| {
            json!({
                "type": 2,
                // 3 green, 4 red, 2 grey: Cancel is grey, as it ends a run that may be fine.
                "style": match (b, b.tone()) {
                    (Button::Cancel, _) => 2,
                    (_, Tone::Go) => 3,
                    (_, Tone::Stop) => 4,
                },
                "label": b.label(),
                "custom_id": format!("{}:{id}", b.id()),
            })
        })
        .collect();
    if buttons.is_empty() {
        Vec::new()
    } else {
        vec![json!({ "type": 1, "components": buttons })]
    }
}

pub fn message(text: &str) -> Value {
    json!({ "content": text, "allowed_mentions": { "parse": ["users"] } })
}
