-- +goose Up
-- Times are BIGINT microseconds since the Unix epoch (UTC) in both backends,
-- so that the two dialects share every query and compare times exactly.
CREATE TABLE users (
    id                    TEXT PRIMARY KEY,
    email                 TEXT NOT NULL UNIQUE,
    name                  TEXT NOT NULL,
    password_hash         TEXT NOT NULL,
    role                  TEXT NOT NULL CHECK (role IN ('USER', 'ADMIN')),
    token_version         BIGINT NOT NULL DEFAULT 0,
    disabled              BOOLEAN NOT NULL DEFAULT FALSE,
    personal_workspace_id TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    personal   BOOLEAN NOT NULL,
    plan       TEXT NOT NULL DEFAULT 'free',
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- +goose Down
DROP TABLE memberships;
DROP TABLE workspaces;
DROP TABLE users;
