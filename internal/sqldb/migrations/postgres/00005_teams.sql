-- +goose Up
-- An invitation stores only the SHA-256 of its token (shown to the inviter
-- once). accepted_at is set exactly once: a used invitation cannot be used
-- again. Rows go with their workspace.
CREATE TABLE invitations (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    token_hash   TEXT NOT NULL UNIQUE,
    invited_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    accepted_at  BIGINT,
    accepted_by  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX invitations_workspace_idx ON invitations (workspace_id, created_at);
CREATE INDEX invitations_email_idx ON invitations (email);

-- Counting a workspace's owners (the last owner may not leave) and finding
-- the enabled admins (the last admin may not be demoted) stay index scans.
CREATE INDEX memberships_workspace_role_idx ON memberships (workspace_id, role);
CREATE INDEX users_role_idx ON users (role, disabled);

-- +goose Down
DROP INDEX users_role_idx;
DROP INDEX memberships_workspace_role_idx;
DROP TABLE invitations;
