-- Rate-limit counters shared by every Lambda instance (in-memory limits would be per instance).
-- One row per (bucket, key): a fixed window that restarts when it has elapsed.
--   bucket 'login_account' key = lower-cased username (known or not, so both answer alike)
--   bucket 'login_ip'      key = client IP
--   bucket 'register_ip'   key = client IP
--   bucket 'upload_user'   key = user id
CREATE TABLE rate_limits (
    bucket       varchar(32)  NOT NULL,
    key          varchar(255) NOT NULL,
    window_start timestamptz  NOT NULL DEFAULT now(),
    hits         integer      NOT NULL DEFAULT 0 CHECK (hits >= 0),
    PRIMARY KEY (bucket, key)
);

CREATE INDEX idx_rate_limits_window_start ON rate_limits (window_start);
