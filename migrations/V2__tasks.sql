-- Analysis tasks and their progress. v5 columns (v5-inventory §5) plus what the serverless
-- pipeline needs: the S3 keys, the object ETag for idempotent processing, the capture duration
-- and an explicit expiry.
CREATE TABLE tasks (
    task_id          uuid PRIMARY KEY,
    -- NULL only for legacy rows imported from v4, which only admins may see.
    owner_id         uuid REFERENCES users (id) ON DELETE CASCADE,
    filename         varchar(255) NOT NULL,
    status           varchar(20)  NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'uploaded', 'processing', 'completed', 'failed', 'expired')),
    file_size_bytes  bigint       NOT NULL CHECK (file_size_bytes >= 0),
    s3_key           varchar(1024),
    s3_etag          varchar(255),
    uploaded_at      timestamptz,
    analyzed_at      timestamptz,
    total_packets    bigint CHECK (total_packets >= 0),
    health_score     double precision CHECK (health_score BETWEEN 0 AND 100),
    capture_duration double precision CHECK (capture_duration >= 0),
    report_html_key  varchar(1024),
    report_json_key  varchar(1024),
    error_message    text,
    progress_percent integer      NOT NULL DEFAULT 0 CHECK (progress_percent BETWEEN 0 AND 100),
    current_phase    varchar(50),
    -- Receives of the SQS message that processed this task; a crash is retried, then DLQ.
    attempts         integer      NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_heartbeat   timestamptz,
    created_at       timestamptz  NOT NULL DEFAULT now(),
    updated_at       timestamptz  NOT NULL DEFAULT now(),
    expires_at       timestamptz  NOT NULL,
    CONSTRAINT tasks_s3_key_unique UNIQUE (s3_key)
);

CREATE INDEX idx_tasks_owner_created ON tasks (owner_id, created_at DESC);
CREATE INDEX idx_tasks_status ON tasks (status);
CREATE INDEX idx_tasks_uploaded_at ON tasks (uploaded_at);
CREATE INDEX idx_tasks_expires_at ON tasks (expires_at);
-- The janitor looks only at running tasks whose heartbeat stopped.
CREATE INDEX idx_tasks_heartbeat ON tasks (last_heartbeat) WHERE status = 'processing';

CREATE TABLE progress_snapshots (
    id                bigserial PRIMARY KEY,
    task_id           uuid        NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    phase             varchar(50) NOT NULL,
    progress_percent  integer     NOT NULL CHECK (progress_percent BETWEEN 0 AND 100),
    bytes_read        bigint CHECK (bytes_read >= 0),
    bytes_total       bigint CHECK (bytes_total >= 0),
    packets_processed bigint CHECK (packets_processed >= 0),
    total_packets     bigint CHECK (total_packets >= 0),
    current_analyzer  varchar(100),
    message           text,
    "timestamp"       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_progress_task_id ON progress_snapshots (task_id, "timestamp");
