-- Attachments of volumes to hosts and servers (issue 4), and the fields of
-- microversion 3.48 on volumes.

CREATE TABLE volume_attachments (
    id TEXT PRIMARY KEY,
    volume_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    instance_uuid TEXT,
    attached_host TEXT,
    mountpoint TEXT,
    attach_status TEXT NOT NULL,
    attach_mode TEXT,
    connector TEXT,
    connection_info TEXT,
    auth TEXT,
    attached_at TEXT,
    detached_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE INDEX volume_attachments_volume ON volume_attachments (volume_id);
CREATE INDEX volume_attachments_project_created ON volume_attachments (project_id, created_at);

ALTER TABLE volumes ADD COLUMN shared_targets BIGINT NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN service_uuid TEXT;
