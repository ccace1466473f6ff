-- Every bucket's entries, one row per (bucket, key).
--
-- Bucket and key are bytea holding their UTF-8 bytes: text cannot hold NUL, which is valid
-- UTF-8 and so a valid key. Read them in psql with convert_from(key, 'UTF8').
CREATE TABLE neongrid_kv (
    -- Insertion order: the keyset cursor of list-keys.
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket bytea NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    -- The indexes hold digests rather than the names: a btree entry must fit in about
    -- 2.7 kB, and keys may be far longer.
    bucket_digest bytea NOT NULL GENERATED ALWAYS AS (sha256(bucket)) STORED,
    key_digest bytea NOT NULL GENERATED ALWAYS AS (sha256(key)) STORED
);

-- One row per (bucket, key); the conflict target of every upsert.
CREATE UNIQUE INDEX neongrid_kv_entry ON neongrid_kv (bucket_digest, key_digest);
-- list-keys: one bucket's rows in id order, from a cursor on.
CREATE INDEX neongrid_kv_bucket_order ON neongrid_kv (bucket_digest, id);

-- Adds p_delta to the counter at (p_bucket, p_key) under a row lock, with the rules of
-- keyvalue_store::semantics::apply_increment: a missing key counts as 0, and the stored
-- value must be canonical ASCII decimal ("0", or digits without a leading zero) within
-- 0..2^64-1. Returns applied = true and the new value as stored; or, when the value is not a
-- counter or the sum would pass 2^64-1, applied = false and the untouched stored value, from
-- which the caller builds the exact shared error.
CREATE FUNCTION neongrid_kv_increment(
    p_bucket bytea,
    p_key bytea,
    p_delta numeric,
    OUT applied boolean,
    OUT stored bytea
)
LANGUAGE plpgsql
AS $$
DECLARE
    entry_id bigint;
    digits text;
    total numeric;
BEGIN
    -- A row to lock: concurrent first increments of one key serialise on this insert.
    INSERT INTO neongrid_kv (bucket, key, value)
        VALUES (p_bucket, p_key, convert_to('0', 'UTF8'))
        ON CONFLICT (bucket_digest, key_digest) DO NOTHING;
    SELECT e.id, e.value INTO entry_id, stored
        FROM neongrid_kv e
        WHERE e.bucket_digest = sha256(p_bucket) AND e.key_digest = sha256(p_key)
            AND e.bucket = p_bucket AND e.key = p_key
        FOR UPDATE;
    -- 'escape' renders every byte outside printable ASCII as a backslash sequence, so a
    -- match means the value is made of ASCII digits only.
    digits := encode(stored, 'escape');
    IF digits !~ '^(0|[1-9][0-9]{0,19})$' THEN
        applied := false;
        RETURN;
    END IF;
    total := digits::numeric + p_delta;
    IF total > 18446744073709551615 THEN
        applied := false;
        RETURN;
    END IF;
    stored := convert_to(total::text, 'UTF8');
    UPDATE neongrid_kv SET value = stored WHERE id = entry_id;
    applied := true;
END;
$$;
