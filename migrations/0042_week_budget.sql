-- The week's budget (issue 17): an optional ceiling on the projected cost of the workers for
-- the camp's week (Monday to Monday in `[ui] timezone`). A launch that would push the week's
-- projection over it needs an admin's explicit override: by hand, a tick box on the launch; for
-- the calendar, "allow over budget" for the week (`over_budget_week`, the Monday it allows).
ALTER TABLE calendar_state
    ADD COLUMN week_budget DOUBLE PRECISION CHECK (week_budget IS NULL OR week_budget >= 0),
    ADD COLUMN over_budget_week DATE;

-- held: the calendar's launch would pass the week's budget; not final (each tick looks again,
-- and launches once an admin allows the week, or records it missed when it is too late).
ALTER TABLE calendar_actions DROP CONSTRAINT calendar_actions_outcome_check;
ALTER TABLE calendar_actions ADD CONSTRAINT calendar_actions_outcome_check
    CHECK (outcome IN ('done', 'missed', 'paused', 'skipped', 'held'));
