-- +goose Up
-- Envelope encryption (see internal/vault): vault_root records which root
-- key (ENCRYPTION_KEY) version is current, with a check value wrapped under
-- it so an instance started with the wrong root refuses to run. Each
-- workspace's data key is stored wrapped under the root, with the version
-- that wrapped it; deleting that row crypto-shreds the workspace's secrets.
CREATE TABLE vault_root (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    version    INTEGER NOT NULL,
    check_key  BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT
);

CREATE TABLE data_keys (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    wrapped      BLOB NOT NULL,
    root_version INTEGER NOT NULL,
    created_at   BIGINT NOT NULL,
    rewrapped_at BIGINT
);

-- Upstream API keys. The secret is only ever stored sealed under the
-- workspace's data key and bound to (workspace_id, id); masked is its
-- display form and fingerprint a keyed hash, unique per workspace.
CREATE TABLE api_keys (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    service          TEXT NOT NULL,
    tier             TEXT NOT NULL CHECK (tier IN ('free', 'paid')),
    meta_type        TEXT NOT NULL DEFAULT '',
    meta_quota       BIGINT,
    meta_description TEXT NOT NULL DEFAULT '',
    label            TEXT NOT NULL DEFAULT '',
    priority         INTEGER NOT NULL DEFAULT 0,
    enabled          BOOLEAN NOT NULL DEFAULT TRUE,
    status           TEXT NOT NULL DEFAULT 'active',
    sealed           BLOB NOT NULL,
    fingerprint      TEXT NOT NULL,
    masked           TEXT NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1,
    created_by       TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    last_used_at     BIGINT,
    rotated_at       BIGINT
);
CREATE UNIQUE INDEX api_keys_fingerprint_idx ON api_keys (workspace_id, fingerprint);
CREATE INDEX api_keys_workspace_idx ON api_keys (workspace_id, id);
CREATE INDEX api_keys_service_idx ON api_keys (workspace_id, service, priority);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE data_keys;
DROP TABLE vault_root;
