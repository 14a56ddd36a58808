-- +goose Up
-- api_key_sets counts the changes to each workspace's keys for a service,
-- so that an instance holding the keys in memory can tell with one
-- single-row read whether they changed, instead of reading them all again.
-- Triggers keep it, so every write to api_keys counts, whichever code path
-- makes it, in the same transaction. Only last_used_at, written on every
-- use of a key, leaves it alone. The delete trigger updates and never
-- inserts, so erasing a workspace leaves no row behind whatever the order
-- of its deletes.
CREATE TABLE api_key_sets (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    service      TEXT NOT NULL,
    version      BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, service)
);
INSERT INTO api_key_sets (workspace_id, service, version)
    SELECT DISTINCT workspace_id, service, 1 FROM api_keys;

-- +goose StatementBegin
CREATE TRIGGER api_keys_set_insert AFTER INSERT ON api_keys
BEGIN
    INSERT OR IGNORE INTO api_key_sets (workspace_id, service, version) VALUES (NEW.workspace_id, NEW.service, 0);
    UPDATE api_key_sets SET version = version + 1 WHERE workspace_id = NEW.workspace_id AND service = NEW.service;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER api_keys_set_update AFTER UPDATE OF id, workspace_id, service, tier, meta_type, meta_quota,
    meta_description, label, priority, enabled, status, sealed, fingerprint, masked, version, created_by,
    created_at, updated_at, rotated_at ON api_keys
BEGIN
    UPDATE api_key_sets SET version = version + 1 WHERE workspace_id = OLD.workspace_id AND service = OLD.service;
    INSERT OR IGNORE INTO api_key_sets (workspace_id, service, version) VALUES (NEW.workspace_id, NEW.service, 0);
    UPDATE api_key_sets SET version = version + 1 WHERE workspace_id = NEW.workspace_id AND service = NEW.service;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER api_keys_set_delete AFTER DELETE ON api_keys
BEGIN
    UPDATE api_key_sets SET version = version + 1 WHERE workspace_id = OLD.workspace_id AND service = OLD.service;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER api_keys_set_delete;
DROP TRIGGER api_keys_set_update;
DROP TRIGGER api_keys_set_insert;
DROP TABLE api_key_sets;
