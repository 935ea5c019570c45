ALTER TABLE meeting_controllers DROP COLUMN IF EXISTS registration_key_hash;
