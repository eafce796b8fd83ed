-- The image-volume cache (issue 9): per backend, the volume that holds a
-- Glance image, cloned for every new volume of that image.

CREATE TABLE image_volume_cache_entries (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    image_id TEXT NOT NULL,
    image_updated_at TEXT,
    volume_id TEXT NOT NULL,
    size BIGINT NOT NULL,
    last_used TEXT NOT NULL
);
CREATE INDEX image_volume_cache_host_image ON image_volume_cache_entries (host, image_id);
