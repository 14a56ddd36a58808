-- +goose Up
-- usage_records holds one row per proxied call, written in batches by the
-- asynchronous recorder. The id makes a batch idempotent: a retried batch
-- inserts nothing twice (ON CONFLICT (id) DO NOTHING). There is no foreign
-- key to workspaces on purpose: a batch that arrives after its workspace
-- was erased must not fail (and be retried forever) because of one row;
-- erasure deletes these rows like every table with a workspace_id column.
CREATE TABLE usage_records (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    service         TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    token_id        TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    method          TEXT NOT NULL,
    status          INTEGER NOT NULL,
    failed          BOOLEAN NOT NULL,
    attempts        INTEGER NOT NULL,
    attempted       TEXT NOT NULL,
    strategy        TEXT NOT NULL,
    premium         BOOLEAN NOT NULL,
    latency_micros  BIGINT NOT NULL,
    overhead_micros BIGINT NOT NULL,
    bytes_in        BIGINT NOT NULL,
    bytes_out       BIGINT NOT NULL,
    cost_micros     BIGINT NOT NULL,
    saved_micros    BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX usage_records_workspace_idx ON usage_records (workspace_id, created_at);

-- usage_hourly is the rollup every period read uses: one row per
-- workspace, service, key and hour (hour = microseconds at the start of the
-- UTC hour). InsertUsage adds the rows it actually inserted in the same
-- transaction, so the two tables always agree.
CREATE TABLE usage_hourly (
    workspace_id       TEXT NOT NULL,
    service            TEXT NOT NULL,
    key_id             TEXT NOT NULL,
    hour               BIGINT NOT NULL,
    calls              BIGINT NOT NULL,
    failed             BIGINT NOT NULL,
    premium            BIGINT NOT NULL,
    cost_micros        BIGINT NOT NULL,
    saved_micros       BIGINT NOT NULL,
    bytes_in           BIGINT NOT NULL,
    bytes_out          BIGINT NOT NULL,
    latency_micros_sum BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, service, key_id, hour)
);
CREATE INDEX usage_hourly_workspace_hour_idx ON usage_hourly (workspace_id, hour);

-- +goose Down
DROP TABLE usage_hourly;
DROP TABLE usage_records;
