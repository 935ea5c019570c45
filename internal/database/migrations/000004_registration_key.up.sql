-- A live registration belongs to its holder (SPEC section 5): RegisterMC
-- returns a key and GC keeps only its SHA-256 (hex). NULL means nobody holds
-- the row (deregistered, or registered before this column existed), so the
-- next RegisterMC for the id may take it.
ALTER TABLE meeting_controllers ADD COLUMN IF NOT EXISTS registration_key_hash TEXT
    CHECK (registration_key_hash ~ '^[0-9a-f]{64}$');
