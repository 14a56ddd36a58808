-- +goose Up
-- plans are the subscription plans as data: administrators change prices
-- and quotas with PUT /admin/plans/{id}. Money is integer micro-dollars
-- (1000000 = $1). rate_per_minute 0 means MAX_REQUESTS_PER_MINUTE. The free
-- plan's included_calls is overridden at run time by DEFAULT_FREE_QUOTA.
CREATE TABLE plans (
    id                      TEXT PRIMARY KEY,
    name                    TEXT NOT NULL,
    price_micros            BIGINT NOT NULL CHECK (price_micros >= 0),
    included_calls          BIGINT NOT NULL CHECK (included_calls >= 0),
    hard_stop               BOOLEAN NOT NULL DEFAULT FALSE,
    rate_per_minute         INTEGER NOT NULL DEFAULT 0 CHECK (rate_per_minute >= 0),
    overage_micros_per_call BIGINT NOT NULL DEFAULT 100 CHECK (overage_micros_per_call >= 0),
    premium_micros_per_call BIGINT NOT NULL DEFAULT 200 CHECK (premium_micros_per_call >= 0),
    analytics_addon_micros  BIGINT NOT NULL DEFAULT 5000000 CHECK (analytics_addon_micros >= 0),
    active                  BOOLEAN NOT NULL DEFAULT TRUE,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);

-- The defaults of DESIGN.md "Plans". Free is a hard stop at 1,000 calls
-- and charges nothing per call: premium routing is on by default for every
-- workspace, and a free workspace has no way to pay for it. Custom starts
-- at zero for an administrator to set per customer.
INSERT INTO plans (id, name, price_micros, included_calls, hard_stop, overage_micros_per_call,
        premium_micros_per_call, created_at, updated_at)
VALUES
    ('free',         'Free',         0,         1000,    TRUE,  0,   0,   0, 0),
    ('professional', 'Professional', 29000000,  100000,  FALSE, 100, 200, 0, 0),
    ('enterprise',   'Enterprise',   199000000, 1000000, FALSE, 100, 200, 0, 0),
    ('custom',       'Custom',       0,         0,       FALSE, 100, 200, 0, 0);
-- Times are microseconds since the epoch, as everywhere.
UPDATE plans SET created_at = CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER),
    updated_at = CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER);

-- A workspace's billing settings.
ALTER TABLE workspaces ADD COLUMN analytics_addon BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE workspaces ADD COLUMN premium_routing BOOLEAN NOT NULL DEFAULT TRUE;

-- plan_changes records every change of a workspace's plan made through
-- ChangeWorkspacePlan (administrators, Stripe), for churn and for the plan a
-- workspace was on in a past month. Erasing a workspace erases its rows.
CREATE TABLE plan_changes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    from_plan    TEXT NOT NULL,
    to_plan      TEXT NOT NULL,
    source       TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX plan_changes_workspace_idx ON plan_changes (workspace_id, created_at);
CREATE INDEX plan_changes_created_idx ON plan_changes (created_at);

-- +goose Down
DROP TABLE plan_changes;
ALTER TABLE workspaces DROP COLUMN premium_routing;
ALTER TABLE workspaces DROP COLUMN analytics_addon;
DROP TABLE plans;
