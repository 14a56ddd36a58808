-- +goose Up
-- api_key_sets counts the changes to each workspace's keys for a service,
-- so that an instance holding the keys in memory can tell with one
-- single-row read whether they changed, instead of reading them all again.
-- A trigger keeps it, so every write to api_keys counts, whichever code
-- path makes it, in the same transaction. Only last_used_at, written on
-- every use of a key, leaves it alone. A delete updates and never inserts,
-- so erasing a workspace leaves no row behind whatever the order of its
-- deletes.
CREATE TABLE api_key_sets (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    service      TEXT NOT NULL,
    version      BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, service)
);
INSERT INTO api_key_sets (workspace_id, service, version)
    SELECT DISTINCT workspace_id, service, 1 FROM api_keys;

-- +goose StatementBegin
CREATE FUNCTION api_key_sets_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (OLD.workspace_id, OLD.service) IS DISTINCT FROM (NEW.workspace_id, NEW.service)) THEN
        UPDATE api_key_sets SET version = version + 1
            WHERE workspace_id = OLD.workspace_id AND service = OLD.service;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO api_key_sets (workspace_id, service, version) VALUES (NEW.workspace_id, NEW.service, 1)
            ON CONFLICT (workspace_id, service) DO UPDATE SET version = api_key_sets.version + 1;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER api_keys_set_version
    AFTER INSERT OR DELETE OR UPDATE OF id, workspace_id, service, tier, meta_type, meta_quota,
        meta_description, label, priority, enabled, status, sealed, fingerprint, masked, version, created_by,
        created_at, updated_at, rotated_at
    ON api_keys FOR EACH ROW EXECUTE FUNCTION api_key_sets_bump();

-- +goose Down
DROP TRIGGER api_keys_set_version ON api_keys;
DROP FUNCTION api_key_sets_bump();
DROP TABLE api_key_sets;
