DROP TABLE IF EXISTS meeting_assignments;
