-- Accounts. Columns keep v5's names (v5-inventory §5) so v4/v5 data imports map one to one;
-- token_version is new: every JWT carries it, and bumping it revokes all tokens of the user at once
-- (password change, block, reset).
CREATE TABLE users (
    id                   uuid PRIMARY KEY,
    username             varchar(50)  NOT NULL,
    email                varchar(255) NOT NULL,
    hashed_password      varchar(255) NOT NULL,
    role                 varchar(20)  NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
    is_active            boolean      NOT NULL DEFAULT true,
    is_approved          boolean      NOT NULL DEFAULT false,
    approved_by          uuid REFERENCES users (id) ON DELETE SET NULL,
    approved_at          timestamptz,
    created_at           timestamptz  NOT NULL DEFAULT now(),
    last_login           timestamptz,
    password_must_change boolean      NOT NULL DEFAULT false,
    password_changed_at  timestamptz  NOT NULL DEFAULT now(),
    is_2fa_enabled       boolean      NOT NULL DEFAULT false,
    -- Kept for imports of v5 rows; 2FA is not offered yet.
    totp_secret          varchar(255),
    backup_codes         text,
    token_version        integer      NOT NULL DEFAULT 0 CHECK (token_version >= 0),
    -- Usernames are stored lower-cased by the API; the check keeps imports honest too.
    CONSTRAINT users_username_format CHECK (username = lower(username) AND length(username) BETWEEN 3 AND 50)
);

CREATE UNIQUE INDEX idx_users_username ON users (username);
CREATE UNIQUE INDEX idx_users_email ON users (lower(email));
CREATE INDEX idx_users_role ON users (role);
CREATE INDEX idx_users_created_at ON users (created_at);

-- The last password hashes of each user, so a change cannot reuse one of them (v5 keeps 5).
CREATE TABLE password_history (
    id              bigserial PRIMARY KEY,
    user_id         uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hashed_password varchar(255) NOT NULL,
    created_at      timestamptz  NOT NULL DEFAULT now()
);

CREATE INDEX idx_password_history_user_created ON password_history (user_id, created_at DESC);
