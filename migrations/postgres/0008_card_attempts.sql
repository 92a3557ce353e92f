-- Whether a card's claimer began opening its incident, or posting it: one that died after
-- the platform acted but before the store heard lets the next claimer look for what it
-- made, by its name or in its channel, instead of making a second.
ALTER TABLE chat_cards ADD COLUMN opening BIGINT NOT NULL DEFAULT 0;
ALTER TABLE chat_cards ADD COLUMN posting BIGINT NOT NULL DEFAULT 0;
