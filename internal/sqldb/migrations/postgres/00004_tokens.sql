-- +goose Up
-- Wallet access tokens. The secret is never stored: access_token_secrets
-- holds the SHA-256 of each secret a token has, the current one with a NULL
-- expires_at and, after a rotation, the replaced ones until their grace
-- period ends. The hash is also the lookup key, so authenticating a token
-- is one indexed read.
CREATE TABLE access_tokens (
    id                    TEXT PRIMARY KEY,
    workspace_id          TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    services              TEXT NOT NULL DEFAULT '[]', -- JSON array; empty means every service
    created_by            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last4                 TEXT NOT NULL,
    rate_limit_per_minute BIGINT NOT NULL DEFAULT 0,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT,
    last_used_at          BIGINT,
    rotated_at            BIGINT,
    revoked_at            BIGINT
);
CREATE INDEX access_tokens_workspace_idx ON access_tokens (workspace_id, id);
CREATE INDEX access_tokens_creator_idx ON access_tokens (created_by);

CREATE TABLE access_token_secrets (
    hash       TEXT PRIMARY KEY,
    token_id   TEXT NOT NULL REFERENCES access_tokens (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX access_token_secrets_token_idx ON access_token_secrets (token_id);

-- +goose Down
DROP TABLE access_token_secrets;
DROP TABLE access_tokens;
