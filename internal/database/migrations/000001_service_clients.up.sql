-- Service clients that may request tokens from AC. Secrets are stored hashed.
CREATE TABLE IF NOT EXISTS service_clients (
    client_id    TEXT PRIMARY KEY CHECK (length(client_id) BETWEEN 1 AND 255),
    secret_hash  TEXT NOT NULL,
    service_type TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
