//! A card as a Discord message: the title and stages in an embed, the buttons in action
//! rows. Each button's custom id is `ACTION:RUN`, or for a stage's buttons `ACTION:RUN/STAGE`.

use serde_json::{Value, json};

use super::super::card::{Button, Card, Target, Tone};
use super::super::offer_card::OfferCard;
use super::super::text;
use crate::clock::short_duration;
use crate::domain::RunState;

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
    let stages: Vec<String> = card.stages.iter().map(|s| s.describe()).collect();
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
    if !card.recovery.is_empty() {
        description.push('\n');
        description.push_str(&card.recovery.join("\n"));
    }
    let mut components = row(&card.buttons, None, &card.run.to_string());
    // Discord allows five rows; the run's own buttons come first.
    for (stage, buttons) in card.stage_buttons.iter().take(4) {
        let target = Target {
            run: card.run,
            stage: Some(stage.clone()),
        };
        components.extend(row(buttons, Some(stage), &target.to_string()));
    }
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
            "footer": { "text": format!("{} {}", card.about, card.id) },
        }],
        "components": offer_rows(card),
        "allowed_mentions": { "parse": [] },
    })
}

/// A standing card's buttons: its own row, then a row for each part (Discord allows five).
fn offer_rows(card: &OfferCard) -> Vec<Value> {
    let mut rows = row(&card.buttons, None, &card.id);
    for (part, buttons) in &card.rows {
        if rows.len() >= 5 {
            break;
        }
        rows.extend(row(buttons, Some(part), &format!("{}/{part}", card.id)));
    }
    rows
}

/// Buttons in one action row (none if there are no buttons); custom ids `ACTION:TARGET`.
fn row(buttons: &[Button], stage: Option<&str>, target: &str) -> Vec<Value> {
    let buttons: Vec<Value> = buttons
        .iter()
        .map(|b| (b, format!("{}:{target}", b.id())))
        // Discord refuses a whole message with a longer custom id; a stage with so long a
        // name keeps its controls in `/dr`.
        .filter(|(_, custom_id)| custom_id.len() <= MAX_CUSTOM_ID)
        .map(|(b, custom_id)| {
            let label = match stage {
                Some(stage) => b.label_for(stage),
                None => b.label().to_string(),
            };
            json!({
                "type": 2,
                // 3 green, 4 red, 2 grey: Cancel is grey, as it ends a run that may be fine.
                "style": match (b, b.tone()) {
                    (Button::Cancel, _) => 2,
                    (_, Tone::Go) => 3,
                    (_, Tone::Stop) => 4,
                },
                "label": label.chars().take(MAX_LABEL).collect::<String>(),
                "custom_id": custom_id,
            })
        })
        .collect();
    if buttons.is_empty() {
        Vec::new()
    } else {
        vec![json!({ "type": 1, "components": buttons })]
    }
}

/// Discord's limits on a button.
const MAX_CUSTOM_ID: usize = 100;
const MAX_LABEL: usize = 80;

/// A thread reply. It pings exactly the users Lifeboat mentions in it (`<@id>`, which
/// escaped text from elsewhere can no longer form), never `@everyone` or a role.
pub fn message(text: &str) -> Value {
    json!({ "content": text, "allowed_mentions": { "parse": [], "users": mentioned(text) } })
}

/// The user ids `<@id>` (or `<@!id>`) names in `text`, each once, at most Discord's 100.
fn mentioned(text: &str) -> Vec<String> {
    let mut users: Vec<String> = Vec::new();
    for (i, _) in text.match_indices("<@") {
        let rest = &text[i + 2..];
        let rest = rest.strip_prefix('!').unwrap_or(rest);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && rest[digits.len()..].starts_with('>') && !users.contains(&digits) {
            users.push(digits);
        }
    }
    users.truncate(100);
    users
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::discord::DISCORD;
    use crate::chat::markup::Markup;

    #[test]
    fn a_reply_pings_only_the_users_lifeboat_mentions() {
        let untrusted = DISCORD.escape("@everyone <@999> <@&42> look");
        let text = format!("<@77> approved; <@!78> too, and <@77> again. Reason: {untrusted}");
        let body = message(&text);
        assert_eq!(
            body["allowed_mentions"],
            json!({ "parse": [], "users": ["77", "78"] })
        );
    }
}
