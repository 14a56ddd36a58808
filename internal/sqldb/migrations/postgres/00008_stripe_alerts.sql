-- +goose Up
-- stripe_events records every Stripe webhook event whose signature checked
-- out, once: the handler inserts the id first, in the transaction that
-- applies the event, so a redelivered or replayed event finds its id taken
-- and changes nothing. signed_at is the Stripe-Signature timestamp: Stripe
-- signs each delivery anew, so the same id with the same signed_at is the
-- same signed request sent again (a replay). Times are microseconds.
CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    created      BIGINT NOT NULL,
    signed_at    BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    outcome      TEXT NOT NULL
);

-- stripe_billing links a workspace to its Stripe customer and subscription.
-- last_event_at is the creation time of the newest event applied: Stripe
-- does not deliver events in order, and an older one must not undo a newer.
CREATE TABLE stripe_billing (
    workspace_id        TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    customer_id         TEXT NOT NULL,
    subscription_id     TEXT NOT NULL,
    subscription_status TEXT NOT NULL,
    past_due            BOOLEAN NOT NULL,
    last_event_at       BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX stripe_billing_customer_idx ON stripe_billing (customer_id) WHERE customer_id <> '';
CREATE INDEX stripe_billing_subscription_idx ON stripe_billing (subscription_id) WHERE subscription_id <> '';

-- alert_settings: a workspace's thresholds ("80,100") and webhook. The
-- signing secret is sealed under the workspace's data key (internal/vault).
CREATE TABLE alert_settings (
    workspace_id   TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    thresholds     TEXT NOT NULL,
    webhook_url    TEXT NOT NULL,
    webhook_secret BYTEA,
    updated_at     BIGINT NOT NULL
);

-- alerts: one row per crossing. The unique key is what makes an alert fire
-- once across instances: each inserts with ON CONFLICT DO NOTHING and only
-- the one whose row went in delivers it. No foreign key to workspaces, as
-- for usage_records: an evaluator racing an erasure must not fail.
CREATE TABLE alerts (
    id                   TEXT PRIMARY KEY,
    workspace_id         TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    subject              TEXT NOT NULL,
    period               TEXT NOT NULL,
    threshold            INTEGER NOT NULL,
    used                 BIGINT NOT NULL,
    quota_limit          BIGINT NOT NULL,
    message              TEXT NOT NULL,
    details              TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    delivery_state       TEXT NOT NULL,
    delivery_attempts    INTEGER NOT NULL,
    delivery_next_at     BIGINT NOT NULL,
    delivery_last_status INTEGER NOT NULL,
    delivery_last_error  TEXT NOT NULL,
    delivered_at         BIGINT,
    UNIQUE (workspace_id, kind, subject, period, threshold)
);
CREATE INDEX alerts_workspace_idx ON alerts (workspace_id, id);
CREATE INDEX alerts_pending_idx ON alerts (delivery_next_at) WHERE delivery_state = 'pending';

-- The background quota evaluator asks which workspaces had usage in the
-- last hours; usage_hourly's own indexes lead with workspace_id.
CREATE INDEX usage_hourly_hour_idx ON usage_hourly (hour);

-- +goose Down
DROP INDEX usage_hourly_hour_idx;
DROP TABLE alerts;
DROP TABLE alert_settings;
DROP TABLE stripe_billing;
DROP TABLE stripe_events;
