-- Scoria's schema. Portable between SQLite and PostgreSQL: text ids and
-- timestamps (Cinder's wire format sorts lexically), BIGINT for numbers and
-- booleans (0/1), DOUBLE PRECISION for floats.

CREATE TABLE volume_types (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    is_public BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE volume_type_extra_specs (
    type_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (type_id, key)
);

CREATE TABLE volumes (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT,
    description TEXT,
    size BIGINT NOT NULL,
    status TEXT NOT NULL,
    previous_status TEXT,
    attach_status TEXT NOT NULL,
    host TEXT,
    availability_zone TEXT NOT NULL,
    volume_type_id TEXT,
    snapshot_id TEXT,
    source_volid TEXT,
    bootable BIGINT NOT NULL DEFAULT 0,
    multiattach BIGINT NOT NULL DEFAULT 0,
    provider_location TEXT,
    admin_metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE INDEX volumes_project_created ON volumes (project_id, created_at);
CREATE INDEX volumes_status ON volumes (status);
CREATE INDEX volumes_host ON volumes (host);

CREATE TABLE volume_metadata (
    volume_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (volume_id, key)
);

CREATE TABLE snapshots (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    volume_id TEXT NOT NULL,
    name TEXT,
    description TEXT,
    size BIGINT NOT NULL,
    status TEXT NOT NULL,
    progress TEXT NOT NULL,
    provider_location TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE INDEX snapshots_project_created ON snapshots (project_id, created_at);
CREATE INDEX snapshots_volume ON snapshots (volume_id);

CREATE TABLE snapshot_metadata (
    snapshot_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, key)
);

CREATE TABLE services (
    id TEXT PRIMARY KEY,
    binary_name TEXT NOT NULL,
    host TEXT NOT NULL,
    availability_zone TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    stats TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (binary_name, host)
);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_uuid TEXT,
    event_id TEXT NOT NULL,
    message_level TEXT NOT NULL,
    user_message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX messages_project_created ON messages (project_id, created_at);
