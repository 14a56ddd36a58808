-- +goose Up
-- Each workspace carries how many keys and how many unrevoked access
-- tokens it holds, so that creating one can be refused at the cap
-- (MAX_KEYS_PER_WORKSPACE, MAX_TOKENS_PER_WORKSPACE) with a one-row read
-- instead of a COUNT over the workspace's rows on every insert. Triggers
-- keep the counts, in the same transaction as the write, whichever code
-- path makes it. SQLite's write transactions run one at a time, so the
-- count a creation reads cannot change before it commits.
ALTER TABLE workspaces ADD COLUMN key_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN token_count BIGINT NOT NULL DEFAULT 0;
UPDATE workspaces SET
    key_count = (SELECT COUNT(*) FROM api_keys k WHERE k.workspace_id = workspaces.id),
    token_count = (SELECT COUNT(*) FROM access_tokens t WHERE t.workspace_id = workspaces.id AND t.revoked_at IS NULL);

-- +goose StatementBegin
CREATE TRIGGER api_keys_count_insert AFTER INSERT ON api_keys
BEGIN
    UPDATE workspaces SET key_count = key_count + 1 WHERE id = NEW.workspace_id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER api_keys_count_update AFTER UPDATE OF workspace_id ON api_keys
BEGIN
    UPDATE workspaces SET key_count = key_count - 1 WHERE id = OLD.workspace_id;
    UPDATE workspaces SET key_count = key_count + 1 WHERE id = NEW.workspace_id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER api_keys_count_delete AFTER DELETE ON api_keys
BEGIN
    UPDATE workspaces SET key_count = key_count - 1 WHERE id = OLD.workspace_id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER access_tokens_count_insert AFTER INSERT ON access_tokens WHEN NEW.revoked_at IS NULL
BEGIN
    UPDATE workspaces SET token_count = token_count + 1 WHERE id = NEW.workspace_id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER access_tokens_count_update AFTER UPDATE OF workspace_id, revoked_at ON access_tokens
BEGIN
    UPDATE workspaces SET token_count = token_count - 1 WHERE id = OLD.workspace_id AND OLD.revoked_at IS NULL;
    UPDATE workspaces SET token_count = token_count + 1 WHERE id = NEW.workspace_id AND NEW.revoked_at IS NULL;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER access_tokens_count_delete AFTER DELETE ON access_tokens WHEN OLD.revoked_at IS NULL
BEGIN
    UPDATE workspaces SET token_count = token_count - 1 WHERE id = OLD.workspace_id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER access_tokens_count_delete;
DROP TRIGGER access_tokens_count_update;
DROP TRIGGER access_tokens_count_insert;
DROP TRIGGER api_keys_count_delete;
DROP TRIGGER api_keys_count_update;
DROP TRIGGER api_keys_count_insert;
ALTER TABLE workspaces DROP COLUMN token_count;
ALTER TABLE workspaces DROP COLUMN key_count;
