-- Volume image metadata (issue 9): what a volume (or a snapshot, to pass on
-- to volumes made from it) keeps of the Glance image it was made from,
-- shown as `volume_image_metadata`.

CREATE TABLE volume_glance_metadata (
    volume_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (volume_id, key)
);

CREATE TABLE snapshot_glance_metadata (
    snapshot_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, key)
);
