//! A card in Block Kit: a header, who asked, one line per stage, who decided what, the
//! total recovery time and scorecard once they are known, and the buttons that apply now.
//! Each button's value is its run's id, and for a stage's buttons `RUN/STAGE`.

use slack_morphism::prelude::*;

use super::super::card::{Button, Card, Target, Tone};
use super::super::offer_card::OfferCard;
use super::super::text;
use crate::clock::short_duration;

pub fn card(card: &Card) -> SlackMessageContent {
    let mut blocks: Vec<SlackBlock> = vec![
        SlackHeaderBlock::new(SlackBlockPlainTextOnly::from(format!(
            "{}: {}",
            card.title,
            text::state_word(card.state)
        )))
        .into(),
        context(card.context.join("\n")),
        SlackSectionBlock::new()
            .with_text(md!(stage_lines(card)))
            .into(),
    ];
    if !card.decisions.is_empty() {
        blocks.push(context(card.decisions.join(" · ")));
    }
    if let Some(total) = card.total {
        blocks.push(
            SlackSectionBlock::new()
                .with_text(md!(format!(
                    "Total recovery time: *{}*",
                    short_duration(total)
                )))
                .into(),
        );
    }
    if !card.recovery.is_empty() {
        blocks.push(context(card.recovery.join("\n")));
    }
    if !card.buttons.is_empty() {
        blocks.push(actions(
            &labelled(&card.buttons, None),
            format!("run:{}", card.run),
            &card.run.to_string(),
        ));
    }
    // Slack takes 50 blocks; a run with more stages in trouble keeps the rest in `/dr`.
    for (i, (stage, buttons)) in card.stage_buttons.iter().take(MAX_STAGE_BLOCKS).enumerate() {
        let target = Target {
            run: card.run,
            stage: Some(stage.clone()),
        };
        blocks.push(actions(
            &labelled(buttons, Some(stage)),
            format!("stage:{}:{i}", card.run),
            &target.to_string(),
        ));
    }
    SlackMessageContent::new()
        .with_text(format!("{}: {}", card.title, text::state_word(card.state)))
        .with_blocks(blocks)
}

/// An offer's card: the question or countdown, the alert, and its buttons.
pub fn offer(card: &OfferCard) -> SlackMessageContent {
    let mut blocks: Vec<SlackBlock> = vec![
        SlackHeaderBlock::new(SlackBlockPlainTextOnly::from(card.title.clone())).into(),
        SlackSectionBlock::new()
            .with_text(md!(card.lines.join("\n")))
            .into(),
        context(format!("{} `{}`", card.about, card.id)),
    ];
    if !card.buttons.is_empty() {
        blocks.push(actions(
            &labelled(&card.buttons, None),
            format!("{}:{}", card.about, card.id),
            &card.id,
        ));
    }
    for (i, (part, buttons)) in card.rows.iter().take(MAX_STAGE_BLOCKS).enumerate() {
        blocks.push(actions(
            &labelled(buttons, Some(part)),
            format!("{}:{}:{i}", card.about, card.id),
            &format!("{}/{part}", card.id),
        ));
    }
    SlackMessageContent::new()
        .with_text(card.title.clone())
        .with_blocks(blocks)
}

/// Stages whose buttons a card shows, within Slack's limit on blocks.
const MAX_STAGE_BLOCKS: usize = 20;

/// Buttons with their labels: a stage's name in those of a stage's buttons.
fn labelled(buttons: &[Button], stage: Option<&str>) -> Vec<(Button, String)> {
    buttons
        .iter()
        .map(|b| {
            let label = match stage {
                Some(stage) => b.label_for(stage),
                None => b.label().to_string(),
            };
            // Slack's limit on a button's text.
            (*b, label.chars().take(75).collect())
        })
        .collect()
}

/// Buttons in one actions block; each carries `value`, what it acts on.
fn actions(buttons: &[(Button, String)], block_id: String, value: &str) -> SlackBlock {
    let buttons = buttons
        .iter()
        .map(|(b, label)| {
            let mut button = SlackBlockButtonElement::new(pt!(label.clone()))
                .with_action_id(SlackActionId::new(b.id().into()))
                .with_value(value.to_string());
            button.style = Some(match b.tone() {
                Tone::Go => SlackBlockButtonStyle::Primary,
                Tone::Stop => SlackBlockButtonStyle::Danger,
            });
            button.into()
        })
        .collect();
    SlackActionsBlock::new(buttons)
        .with_block_id(SlackBlockId::new(block_id))
        .into()
}

fn context(text: String) -> SlackBlock {
    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
        SlackBlockMarkDownText::new(text),
    )])
    .into()
}

fn stage_lines(card: &Card) -> String {
    card.stages
        .iter()
        .map(|s| s.describe())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A plain message.
pub fn message(text: &str) -> SlackMessageContent {
    SlackMessageContent::new().with_text(text.to_string())
}
