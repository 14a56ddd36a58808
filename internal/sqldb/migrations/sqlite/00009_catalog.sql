-- +goose Up
-- The service catalog as administrators edited it, one JSON document.
CREATE TABLE service_catalog (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    document   TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE service_catalog;
