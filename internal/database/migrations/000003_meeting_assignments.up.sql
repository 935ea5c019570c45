-- Which MC hosts which meeting. One open assignment per meeting.
CREATE TABLE IF NOT EXISTS meeting_assignments (
    meeting_id    TEXT NOT NULL,
    controller_id TEXT NOT NULL REFERENCES meeting_controllers (controller_id) ON DELETE CASCADE,
    region        TEXT NOT NULL,
    assigned_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    assigned_by   TEXT NOT NULL,
    ended_at      TIMESTAMPTZ
);

CREATE UNIQUE INDEX IF NOT EXISTS meeting_assignments_open
    ON meeting_assignments (meeting_id) WHERE ended_at IS NULL;
