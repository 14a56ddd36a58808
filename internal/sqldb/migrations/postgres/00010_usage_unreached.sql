-- +goose Up
-- A call that reached no upstream (every key failed to decrypt, every
-- connection failed) is recorded, but its quota reservation is refunded:
-- billing and quotas count calls - unreached. Rows written before this
-- migration were all counted, so they default to reached.
ALTER TABLE usage_records ADD COLUMN unreached BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE usage_hourly ADD COLUMN unreached BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE usage_hourly DROP COLUMN unreached;
ALTER TABLE usage_records DROP COLUMN unreached;
