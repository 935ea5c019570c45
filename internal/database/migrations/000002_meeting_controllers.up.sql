-- The meeting-controller registry. Every GC replica reads and writes it, so
-- any replica can serve any RPC.
CREATE TABLE IF NOT EXISTS meeting_controllers (
    controller_id            TEXT PRIMARY KEY CHECK (controller_id ~ '^[A-Za-z0-9_-]{1,255}$'),
    region                   TEXT NOT NULL CHECK (length(region) BETWEEN 1 AND 50),
    grpc_endpoint            TEXT NOT NULL,
    webtransport_endpoint    TEXT NOT NULL,
    webtransport_cert_sha256 TEXT NOT NULL DEFAULT '',
    max_meetings             INTEGER NOT NULL CHECK (max_meetings > 0),
    current_meetings         INTEGER NOT NULL DEFAULT 0 CHECK (current_meetings >= 0),
    max_participants         INTEGER NOT NULL CHECK (max_participants > 0),
    current_participants     INTEGER NOT NULL DEFAULT 0 CHECK (current_participants >= 0),
    health_status            TEXT NOT NULL DEFAULT 'pending'
        CHECK (health_status IN ('pending', 'healthy', 'degraded', 'unhealthy', 'draining')),
    last_heartbeat_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS meeting_controllers_region_health
    ON meeting_controllers (region, health_status);
