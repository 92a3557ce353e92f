//! A card as a Mattermost post: a message attachment with the title, stages and decisions,
//! and interactive buttons. Mattermost signs nothing it posts back, so each button's
//! context carries an HMAC of what it does, made with a key only Lifeboat holds: a press
//! whose context was not made here does nothing.

use serde_json::{Value, json};

use super::super::card::{Button, Card, Target, Tone};
use super::super::offer_card::OfferCard;
use super::super::text;
use crate::clock::short_duration;
use crate::domain::RunState;
use crate::secret::{ExposeSecret, SecretString};
use crate::signing;

/// Where presses go, and the key their contexts are signed with.
#[derive(Clone)]
pub struct Actions {
    url: String,
    key: Vec<u8>,
}

impl Actions {
    /// Contexts signed with a key drawn from the bot's token, so that there is no other
    /// secret to hand out, and rotating the token rotates it.
    pub fn new(url: String, token: &SecretString) -> Actions {
        let key = signing::sign(
            token.expose_secret().as_bytes(),
            &[b"lifeboat/mattermost-actions"],
        );
        Actions {
            url,
            key: key.into_bytes(),
        }
    }

    fn signature(&self, button: &str, target: &str) -> String {
        signing::sign(&self.key, &[button.as_bytes(), b":", target.as_bytes()])
    }

    /// Whether a press's context was made here, for this button and target.
    pub fn verify(&self, button: &str, target: &str, signature: &str) -> bool {
        signing::hmac_matches(
            &self.key,
            &[button.as_bytes(), b":", target.as_bytes()],
            signature,
        )
    }

    fn button(&self, b: Button, label: String, target: &str) -> Value {
        json!({
            "name": label,
            "style": match (b, b.tone()) {
                (Button::Cancel, _) => "default",
                (_, Tone::Go) => "success",
                (_, Tone::Stop) => "danger",
            },
            "integration": {
                "url": self.url,
                "context": {
                    "button": b.id(),
                    "target": target,
                    "signature": self.signature(b.id(), target),
                }
            }
        })
    }
}

fn colour(state: RunState) -> &'static str {
    match state {
        RunState::Succeeded => "#2ecc71",
        RunState::Failed => "#e74c3c",
        RunState::Cancelled => "#95a5a6",
        _ => "#5865f2",
    }
}

fn buttons(
    actions: Option<&Actions>,
    buttons: &[Button],
    stage: Option<&str>,
    target: &str,
) -> Vec<Value> {
    let Some(actions) = actions else {
        return Vec::new();
    };
    buttons
        .iter()
        .map(|b| {
            let label = match stage {
                Some(stage) => b.label_for(stage),
                None => b.label().to_string(),
            };
            actions.button(*b, label, target)
        })
        .collect()
}

pub fn card(card: &Card, actions: Option<&Actions>) -> Value {
    let mut text = card.context.join("\n");
    text.push_str("\n\n");
    let stages: Vec<String> = card.stages.iter().map(|s| s.describe()).collect();
    text.push_str(&stages.join("\n"));
    if !card.decisions.is_empty() {
        text.push_str("\n\n");
        text.push_str(&card.decisions.join("\n"));
    }
    if let Some(total) = card.total {
        text.push_str(&format!(
            "\n\nTotal recovery time: **{}**",
            short_duration(total)
        ));
    }
    if !card.recovery.is_empty() {
        text.push('\n');
        text.push_str(&card.recovery.join("\n"));
    }
    let mut all = buttons(actions, &card.buttons, None, &card.run.to_string());
    for (stage, stage_buttons) in &card.stage_buttons {
        let target = Target {
            run: card.run,
            stage: Some(stage.clone()),
        };
        all.extend(buttons(
            actions,
            stage_buttons,
            Some(stage),
            &target.to_string(),
        ));
    }
    let title = format!("{}: {}", card.title, text::state_word(card.state));
    json!({
        "message": "",
        "props": { "attachments": [{
            "fallback": title,
            "color": colour(card.state),
            "title": title,
            "text": text,
            "footer": format!("run {}", card.run),
            "actions": all,
        }]},
    })
}

pub fn offer(card: &OfferCard, actions: Option<&Actions>) -> Value {
    let colour = if card.settled { "#95a5a6" } else { "#f39c12" };
    let mut all = buttons(actions, &card.buttons, None, &card.id);
    for (part, part_buttons) in &card.rows {
        all.extend(buttons(
            actions,
            part_buttons,
            Some(part),
            &format!("{}/{part}", card.id),
        ));
    }
    json!({
        "message": "",
        "props": { "attachments": [{
            "fallback": card.title,
            "color": colour,
            "title": card.title,
            "text": card.lines.join("\n"),
            "footer": format!("{} {}", card.about, card.id),
            "actions": all,
        }]},
    })
}

pub fn message(text: &str) -> Value {
    json!({ "message": text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_verifies_only_for_its_own_button_and_target_and_key() {
        let actions = Actions::new("http://x".into(), &SecretString::from("token-a"));
        let sig = actions.signature("approve", "R1");
        assert!(actions.verify("approve", "R1", &sig));
        assert!(!actions.verify("cancel", "R1", &sig));
        assert!(!actions.verify("approve", "R2", &sig));
        let other = Actions::new("http://x".into(), &SecretString::from("token-b"));
        assert!(!other.verify("approve", "R1", &sig));
    }
}
