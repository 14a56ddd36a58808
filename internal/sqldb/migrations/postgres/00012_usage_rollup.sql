-- +goose Up
-- Each call's normalised endpoint (apiwallet.UsageEndpoint), set by the proxy.
ALTER TABLE usage_records ADD COLUMN endpoint TEXT NOT NULL DEFAULT '';

-- The workspace's reporting time zone (IANA name; '' is UTC) for analytics' days.
ALTER TABLE workspaces ADD COLUMN timezone TEXT NOT NULL DEFAULT '';

-- usage_rollup is the analytics rollup: one row per workspace, service, key,
-- token, user, endpoint and UTC hour, with the outcome of each call by class
-- and latency and overhead histograms (lat_NN, ovh_NN: 24 log-spaced buckets,
-- see internal/sqldb/analytics.go), so that every GET /usage grouping and
-- filter is answered from it. InsertUsage adds to it in the same transaction
-- as usage_records and usage_hourly. Rows written before this migration are
-- not in it: analytics starts with the calls made after the upgrade.
CREATE TABLE usage_rollup (
    workspace_id        TEXT NOT NULL,
    service             TEXT NOT NULL,
    key_id              TEXT NOT NULL,
    token_id            TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    endpoint            TEXT NOT NULL,
    hour                BIGINT NOT NULL,
    calls               BIGINT NOT NULL,
    successes           BIGINT NOT NULL,
    client_errors       BIGINT NOT NULL,
    server_errors       BIGINT NOT NULL,
    network_errors      BIGINT NOT NULL,
    refused             BIGINT NOT NULL,
    rate_limited        BIGINT NOT NULL,
    unreached           BIGINT NOT NULL,
    cost_micros         BIGINT NOT NULL,
    saved_micros        BIGINT NOT NULL,
    bytes_in            BIGINT NOT NULL,
    bytes_out           BIGINT NOT NULL,
    latency_micros_sum  BIGINT NOT NULL,
    overhead_micros_sum BIGINT NOT NULL,
    lat_00              BIGINT NOT NULL,
    lat_01              BIGINT NOT NULL,
    lat_02              BIGINT NOT NULL,
    lat_03              BIGINT NOT NULL,
    lat_04              BIGINT NOT NULL,
    lat_05              BIGINT NOT NULL,
    lat_06              BIGINT NOT NULL,
    lat_07              BIGINT NOT NULL,
    lat_08              BIGINT NOT NULL,
    lat_09              BIGINT NOT NULL,
    lat_10              BIGINT NOT NULL,
    lat_11              BIGINT NOT NULL,
    lat_12              BIGINT NOT NULL,
    lat_13              BIGINT NOT NULL,
    lat_14              BIGINT NOT NULL,
    lat_15              BIGINT NOT NULL,
    lat_16              BIGINT NOT NULL,
    lat_17              BIGINT NOT NULL,
    lat_18              BIGINT NOT NULL,
    lat_19              BIGINT NOT NULL,
    lat_20              BIGINT NOT NULL,
    lat_21              BIGINT NOT NULL,
    lat_22              BIGINT NOT NULL,
    lat_23              BIGINT NOT NULL,
    ovh_00              BIGINT NOT NULL,
    ovh_01              BIGINT NOT NULL,
    ovh_02              BIGINT NOT NULL,
    ovh_03              BIGINT NOT NULL,
    ovh_04              BIGINT NOT NULL,
    ovh_05              BIGINT NOT NULL,
    ovh_06              BIGINT NOT NULL,
    ovh_07              BIGINT NOT NULL,
    ovh_08              BIGINT NOT NULL,
    ovh_09              BIGINT NOT NULL,
    ovh_10              BIGINT NOT NULL,
    ovh_11              BIGINT NOT NULL,
    ovh_12              BIGINT NOT NULL,
    ovh_13              BIGINT NOT NULL,
    ovh_14              BIGINT NOT NULL,
    ovh_15              BIGINT NOT NULL,
    ovh_16              BIGINT NOT NULL,
    ovh_17              BIGINT NOT NULL,
    ovh_18              BIGINT NOT NULL,
    ovh_19              BIGINT NOT NULL,
    ovh_20              BIGINT NOT NULL,
    ovh_21              BIGINT NOT NULL,
    ovh_22              BIGINT NOT NULL,
    ovh_23              BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, hour, service, key_id, token_id, user_id, endpoint)
);
CREATE INDEX usage_rollup_token_idx ON usage_rollup (workspace_id, token_id, hour);

-- +goose Down
DROP TABLE usage_rollup;
ALTER TABLE usage_records DROP COLUMN endpoint;
ALTER TABLE workspaces DROP COLUMN timezone;
