-- A gate an agent raised while it worked (a promote that would lose more writes than the
-- stage allows): what it says and how many people it needs, as JSON; NULL when none.
ALTER TABLE stages ADD COLUMN hold TEXT;
