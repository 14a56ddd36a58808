-- +goose Up
-- Each workspace carries how many keys and how many unrevoked access
-- tokens it holds, so that creating one can be refused at the cap
-- (MAX_KEYS_PER_WORKSPACE, MAX_TOKENS_PER_WORKSPACE) with a one-row read
-- instead of a COUNT over the workspace's rows on every insert. Triggers
-- keep the counts, in the same transaction as the write, whichever code
-- path makes it; the creating transaction locks the workspace row before
-- it reads its count, so two concurrent creations cannot both pass it.
ALTER TABLE workspaces ADD COLUMN key_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN token_count BIGINT NOT NULL DEFAULT 0;
UPDATE workspaces SET
    key_count = (SELECT COUNT(*) FROM api_keys k WHERE k.workspace_id = workspaces.id),
    token_count = (SELECT COUNT(*) FROM access_tokens t WHERE t.workspace_id = workspaces.id AND t.revoked_at IS NULL);

-- +goose StatementBegin
CREATE FUNCTION workspace_key_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE workspaces SET key_count = key_count - 1 WHERE id = OLD.workspace_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        UPDATE workspaces SET key_count = key_count + 1 WHERE id = NEW.workspace_id;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION workspace_token_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.revoked_at IS NULL THEN
        UPDATE workspaces SET token_count = token_count - 1 WHERE id = OLD.workspace_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.revoked_at IS NULL THEN
        UPDATE workspaces SET token_count = token_count + 1 WHERE id = NEW.workspace_id;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER api_keys_count
    AFTER INSERT OR DELETE OR UPDATE OF workspace_id ON api_keys
    FOR EACH ROW EXECUTE FUNCTION workspace_key_count();
CREATE TRIGGER access_tokens_count
    AFTER INSERT OR DELETE OR UPDATE OF workspace_id, revoked_at ON access_tokens
    FOR EACH ROW EXECUTE FUNCTION workspace_token_count();

-- +goose Down
DROP TRIGGER access_tokens_count ON access_tokens;
DROP TRIGGER api_keys_count ON api_keys;
DROP FUNCTION workspace_token_count();
DROP FUNCTION workspace_key_count();
ALTER TABLE workspaces DROP COLUMN token_count;
ALTER TABLE workspaces DROP COLUMN key_count;
