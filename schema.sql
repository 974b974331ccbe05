-- certadns-ddns schema of record: every migration, oldest first.
--
-- Applied by src/store/schema.rs inside one exclusive transaction and tracked in
-- `PRAGMA user_version`. The text up to the first `-- migration N: ...` line is migration 1;
-- each such line starts migration N. Released migrations are never edited (databases in the
-- field ran them): a change to the schema is a new migration appended at the end.
--
-- Conventions, so that `sqlite3 certadns.db` reads naturally:
-- * Times are UTC, RFC 3339 with milliseconds (`2026-11-27T11:32:15.123Z`): they sort as text.
-- * Host and zone names are stored lower case, without the trailing dot.
-- * IP addresses are stored in canonical text form (RFC 5952 for IPv6).
-- * Lists (scopes, name servers, IP tags) are JSON arrays, readable with SQLite's json_each().

-- The DNS zones this service is authoritative for. Every DDNS domain lies inside one.
CREATE TABLE zones (
    id          INTEGER PRIMARY KEY,
    -- Zone apex, e.g. `dyn.example.net`.
    name        TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    -- Authoritative name servers (NS records at the apex), JSON array of host names.
    -- The first one is the SOA MNAME.
    nameservers TEXT    NOT NULL CHECK (json_valid(nameservers) AND json_array_length(nameservers) > 0),
    -- SOA RNAME as a DNS name, e.g. `hostmaster.dyn.example.net`.
    hostmaster  TEXT    NOT NULL,
    -- SOA serial. Increases by one with every change to the zone's records, DDNS updates included.
    serial      INTEGER NOT NULL CHECK (serial BETWEEN 1 AND 4294967295),
    -- The serial secondaries were last notified of (pdns's setNotified). A zone whose serial
    -- differs is returned by getUpdatedMasters, and pdns sends NOTIFY for it.
    notified_serial INTEGER NOT NULL DEFAULT 0,
    -- Secondaries to notify besides the NS set, JSON array of `ip` or `ip:port` (`[v6]:port`);
    -- served as ALSO-NOTIFY metadata, and their addresses may transfer the zone (ALLOW-AXFR-FROM).
    also_notify TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(also_notify)),
    -- SOA timers, in seconds.
    refresh     INTEGER NOT NULL DEFAULT 10800,
    retry       INTEGER NOT NULL DEFAULT 3600,
    expire      INTEGER NOT NULL DEFAULT 604800,
    -- SOA MINIMUM: the negative-caching TTL (RFC 2308).
    minimum     INTEGER NOT NULL DEFAULT 60,
    -- TTL of the SOA and NS records themselves.
    ttl         INTEGER NOT NULL DEFAULT 3600,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

-- Accounts. A user logs in (and authenticates DDNS updates) with username or email.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    -- Login name: lower-case letters, digits, `.`, `_`, `-`; never contains `@`, so it cannot
    -- collide with another user's email.
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    email         TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    -- argon2id PHC string (`$argon2id$v=19$m=...$salt$hash`); the password itself is never stored.
    password_hash TEXT    NOT NULL,
    -- Plan decides the record TTL (free: 3600 s, others: 60 s) and whether API keys work.
    plan          TEXT    NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'plus', 'pro', 'elite')),
    -- 0 disables every login and key of the user without deleting anything.
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);

-- API keys (`ak_...`). Only a SHA-256 of the key is kept: a key that is lost is replaced, not recovered.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    -- Owner of the key.
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The first characters of the key (`ak_` and 8 more): not secret, shown in listings and
    -- accepted by `key revoke`.
    prefix       TEXT    NOT NULL,
    -- Lower-case hex SHA-256 of the whole key; the key is looked up by it.
    key_hash     TEXT    NOT NULL UNIQUE,
    -- JSON array of scopes, e.g. `["domains:update"]`.
    scopes       TEXT    NOT NULL CHECK (json_valid(scopes)),
    is_active    INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at   TEXT    NOT NULL,
    -- Set on every successful authentication with the key.
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- DDNS domains: one A or AAAA record each, owned by one user, updated by the update endpoints.
-- The same name may hold one A and one AAAA domain.
CREATE TABLE domains (
    id              INTEGER PRIMARY KEY,
    fqdn            TEXT    NOT NULL COLLATE NOCASE,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    zone_id         INTEGER NOT NULL REFERENCES zones (id) ON DELETE RESTRICT,
    record_type     TEXT    NOT NULL CHECK (record_type IN ('A', 'AAAA')),
    -- Current address; NULL until the first update (nothing is served for it then).
    ip              TEXT,
    created_at      TEXT    NOT NULL,
    -- Last time the address changed.
    updated_at      TEXT    NOT NULL,
    -- Last time a client sent an authenticated update for it, changed or not.
    last_checked_at TEXT,
    UNIQUE (fqdn, record_type)
);
CREATE INDEX domains_user ON domains (user_id);
CREATE INDEX domains_zone ON domains (zone_id);

-- Static records an admin keeps in a zone: the name servers' addresses, the apex, mail,
-- delegations, TXT for verification... DDNS addresses live in `domains`; the zone's SOA and
-- apex NS set live in `zones`. Content is stored in zone-file presentation format, as served
-- (absolute names end with a dot, TXT is quoted, MX/SRV priority inside the content).
CREATE TABLE records (
    id          INTEGER PRIMARY KEY,
    zone_id     INTEGER NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    -- Owner name, lower case, no trailing dot; may start with `*.` (wildcard).
    name        TEXT    NOT NULL COLLATE NOCASE,
    type        TEXT    NOT NULL CHECK (type IN ('A', 'AAAA', 'CNAME', 'MX', 'TXT', 'NS', 'SRV', 'CAA')),
    content     TEXT    NOT NULL,
    ttl         INTEGER NOT NULL CHECK (ttl BETWEEN 0 AND 2147483647),
    created_at  TEXT    NOT NULL,
    UNIQUE (zone_id, name, type, content)
);

-- The audit trail: one row per change of a domain's address, written in the same transaction as
-- the change. `nochg` answers write no row. Rows outlive their domain (domain_id becomes NULL, the
-- name stays), so "who had this name, and when" can still be answered.
CREATE TABLE domain_updates (
    id           INTEGER PRIMARY KEY,
    domain_id    INTEGER REFERENCES domains (id) ON DELETE SET NULL,
    fqdn         TEXT    NOT NULL COLLATE NOCASE,
    record_type  TEXT    NOT NULL CHECK (record_type IN ('A', 'AAAA')),
    -- NULL for the first address a domain gets.
    old_ip       TEXT,
    new_ip       TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    -- Client address as detected (X-Forwarded-For from a trusted proxy, else the TCP peer);
    -- NULL for changes made with the admin CLI.
    source_ip    TEXT,
    -- The TCP peer that sent the request (the proxy, when there is one).
    peer_ip      TEXT,
    -- ISO 3166 country of source_ip; NULL until GeoIP enrichment exists.
    country_code TEXT,
    -- JSON array of the special-purpose ranges new_ip lies in, e.g. `["private"]`.
    ip_tags      TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(ip_tags)),
    user_agent   TEXT,
    -- How the change was authenticated: bearer, basic, query (update endpoints) or admin (CLI).
    auth_method  TEXT    NOT NULL CHECK (auth_method IN ('bearer', 'basic', 'query', 'admin'))
);
CREATE INDEX domain_updates_domain ON domain_updates (domain_id);
CREATE INDEX domain_updates_fqdn ON domain_updates (fqdn, id);

-- migration 2: abuse episodes

-- Hosts flagged for sustained excess of update requests (README, "Abuse"): one row per episode,
-- from the request that started it until the host has been quiet for the cool-down. While
-- `clears_at` is in the future the host answers `abuse` (429) and its records stay as they are.
-- Written behind by the service (within about a second), only for hosts the user owns.
CREATE TABLE abuse_episodes (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The host, as in `domains.fqdn` (a name may have an A and an AAAA domain: one episode).
    fqdn            TEXT    NOT NULL COLLATE NOCASE,
    -- The first request refused.
    started_at      TEXT    NOT NULL,
    -- The last request refused so far.
    last_refused_at TEXT    NOT NULL,
    -- Requests refused in this episode.
    refused         INTEGER NOT NULL CHECK (refused >= 1),
    -- When the flag lifts if no more requests come above the rate; each one moves it on.
    clears_at       TEXT    NOT NULL,
    UNIQUE (user_id, fqdn, started_at)
);
CREATE INDEX abuse_episodes_fqdn ON abuse_episodes (fqdn, started_at);

-- migration 3: the served-change log

-- What changed in what DNS answers, written by the triggers below in the transaction of the
-- change itself, whoever makes it: the service, the admin CLI, `sqlite3`. The service reads the
-- rows after the last one it applied and refreshes only those names in its in-memory index
-- (ARCHITECTURE.md), then deletes what it has applied. A row names a zone and an owner name
-- whose records may have changed, or (name NULL) the zone row itself: its SOA, NS set, or the
-- zone added or removed. AUTOINCREMENT: a sequence number is never reused, even after the
-- rows before it are deleted, so "the rows after N" always means the changes after N.
CREATE TABLE served_changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    zone_id INTEGER NOT NULL,
    name    TEXT
);

CREATE TRIGGER served_zone_added AFTER INSERT ON zones
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (new.id, NULL);
END;
CREATE TRIGGER served_zone_changed AFTER UPDATE ON zones
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (old.id, NULL);
    INSERT INTO served_changes (zone_id, name) SELECT new.id, NULL WHERE new.id IS NOT old.id;
END;
CREATE TRIGGER served_zone_removed AFTER DELETE ON zones
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (old.id, NULL);
END;

CREATE TRIGGER served_record_added AFTER INSERT ON records
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (new.zone_id, new.name);
END;
CREATE TRIGGER served_record_changed AFTER UPDATE ON records
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (old.zone_id, old.name);
    INSERT INTO served_changes (zone_id, name) SELECT new.zone_id, new.name
        WHERE new.zone_id IS NOT old.zone_id OR new.name IS NOT old.name;
END;
CREATE TRIGGER served_record_removed AFTER DELETE ON records
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (old.zone_id, old.name);
END;

-- A domain is served once it has an address; `last_checked_at` and `updated_at` alone change
-- nothing that DNS answers, so a router repeating its address writes no row here.
CREATE TRIGGER served_domain_added AFTER INSERT ON domains
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (new.zone_id, new.fqdn);
END;
CREATE TRIGGER served_domain_changed AFTER UPDATE OF fqdn, user_id, zone_id, record_type, ip ON domains
WHEN new.ip IS NOT old.ip OR new.fqdn IS NOT old.fqdn OR new.zone_id IS NOT old.zone_id
  OR new.record_type IS NOT old.record_type OR new.user_id IS NOT old.user_id
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (old.zone_id, old.fqdn);
    INSERT INTO served_changes (zone_id, name) SELECT new.zone_id, new.fqdn
        WHERE new.zone_id IS NOT old.zone_id OR new.fqdn IS NOT old.fqdn;
END;
CREATE TRIGGER served_domain_removed AFTER DELETE ON domains
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (old.zone_id, old.fqdn);
END;

-- The TTL of a DDNS record follows its owner's plan.
CREATE TRIGGER served_plan_changed AFTER UPDATE OF plan ON users
WHEN new.plan IS NOT old.plan
BEGIN
    INSERT INTO served_changes (zone_id, name)
        SELECT zone_id, fqdn FROM domains WHERE user_id = new.id AND ip IS NOT NULL;
END;

-- migration 4: where an update came from

-- The audit trail says where each change came from and where it points (README, "Audit trail").
-- From this migration on, for rows written by this version:
--   country_code         the country of new_ip: what the name now points to, and with address
--                        auto-detection also the client (the comment of migration 1 that says
--                        "of source_ip" is superseded; rows from before have none);
--   ip_tags              the tags of new_ip;
--   source_country_code  the country of source_ip, the client as detected after the trusted
--                        proxies;
--   source_ip_tags       the tags of source_ip.
-- Countries are ISO 3166-1 alpha-2 codes from `geoip-database` ([audit] in the config); NULL
-- without one, for special-purpose ranges (private, loopback...), for addresses the database
-- does not place, and for changes made with the admin CLI (source). Tags are a JSON array of
-- strings, in this order: the special-purpose ranges (`private`, `documentation`, `cgnat`...),
-- `asn:NUMBER` from `asn-database`, then the names of the `[audit.ip-tags]` lists holding the
-- address (`tor-exit`, `hosting`...). Query them with json_each, e.g.
--   SELECT d.* FROM domain_updates d, json_each(d.source_ip_tags) t WHERE t.value = 'tor-exit';
-- Rows written before this migration keep what they had: source_ip_tags is '[]'.
ALTER TABLE domain_updates ADD COLUMN source_country_code TEXT;
ALTER TABLE domain_updates ADD COLUMN source_ip_tags TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(source_ip_tags));

-- migration 5: the account holder's sign-in sessions

-- One row per signed-in browser of the account holder's pages (/dashboard). The cookie holds a
-- random 256-bit token; only its SHA-256 (hex) is stored, so a copy of this file signs nobody
-- in. A row ends at sign-out, at `expires_at`, and at once (the trigger below) when its user is
-- disabled or their password changes, whoever makes the change (the CLI, an import, sqlite3).
CREATE TABLE dashboard_sessions (
    id            INTEGER PRIMARY KEY,
    token_hash    TEXT    NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL,
    -- The client the session was opened from (after the trusted proxies) and its user agent,
    -- for the admin who asks where an account is signed in.
    source_ip     TEXT,
    user_agent    TEXT
);
CREATE INDEX dashboard_sessions_by_user ON dashboard_sessions (user_id, expires_at);

CREATE TRIGGER dashboard_sessions_end AFTER UPDATE OF password_hash, is_active ON users
WHEN new.password_hash IS NOT old.password_hash OR (old.is_active AND NOT new.is_active)
BEGIN
    DELETE FROM dashboard_sessions WHERE user_id = new.id;
END;

-- migration 6: IPv6 prefix updates

-- An AAAA domain may keep its host part when its network's prefix changes (a router sends the
-- new prefix: `ip6lanprefix`, `ipv6prefix`, or a prefix in `myipv6`): its interface identifier
-- (canonical IPv6 text such as `::a:b:c:d`; never zero, no bit inside the prefix length), the
-- prefix length it applies to, and the subnet id placed between a shorter delegated prefix and
-- that length (0: the LAN's first /64). The address is then the prefix, the subnet id and the
-- interface identifier. `follows` names another domain name of the same owner: a prefix sent
-- for that name updates this domain too (a printer following the router's own name).
ALTER TABLE domains ADD COLUMN interface_id TEXT
    CHECK (interface_id IS NULL OR record_type = 'AAAA');
ALTER TABLE domains ADD COLUMN prefix_length INTEGER NOT NULL DEFAULT 64
    CHECK (prefix_length BETWEEN 1 AND 127);
ALTER TABLE domains ADD COLUMN subnet_id INTEGER NOT NULL DEFAULT 0 CHECK (subnet_id >= 0);
ALTER TABLE domains ADD COLUMN follows TEXT COLLATE NOCASE;
CREATE INDEX domains_following ON domains (user_id, follows) WHERE follows IS NOT NULL;

-- The prefix an address was made from and the request parameter it came in (`ip6lanprefix`,
-- `ipv6prefix`, `myipv6`, `ipv6`); NULL for an address that was sent whole.
ALTER TABLE domain_updates ADD COLUMN prefix TEXT;
ALTER TABLE domain_updates ADD COLUMN prefix_parameter TEXT;

-- migration 7: ACME DNS-01 challenge values

-- TXT values at `_acme-challenge.<host>` for a DDNS host, set by the host's owner so that a
-- home server can get a certificate (apex and wildcard validations run together: a few values
-- at once). Served through the backend like any record, with a short TTL; each row goes on
-- cleanup or at `expires_at` (the service deletes expired rows), and with the host's last
-- domain. Nothing else may hold a TXT set this way: the name is always `_acme-challenge.`
-- directly under a domain of `user_id`.
CREATE TABLE acme_challenges (
    id          INTEGER PRIMARY KEY,
    zone_id     INTEGER NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    -- `_acme-challenge.` and the host's name: lower case, no final dot.
    name        TEXT    NOT NULL COLLATE NOCASE CHECK (name LIKE '\_acme-challenge.%' ESCAPE '\'),
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The value as the ACME client gave it (base64url: served between quotes, unescaped).
    value       TEXT    NOT NULL CHECK (length(value) BETWEEN 1 AND 255),
    created_at  TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL,
    UNIQUE (name, value)
);
CREATE INDEX acme_challenges_expiry ON acme_challenges (expires_at);

CREATE TRIGGER served_challenge_added AFTER INSERT ON acme_challenges
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (new.zone_id, new.name);
END;
CREATE TRIGGER served_challenge_changed AFTER UPDATE OF zone_id, name, value ON acme_challenges
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (old.zone_id, old.name);
    INSERT INTO served_changes (zone_id, name) SELECT new.zone_id, new.name
        WHERE new.zone_id IS NOT old.zone_id OR new.name IS NOT old.name;
END;
CREATE TRIGGER served_challenge_removed AFTER DELETE ON acme_challenges
BEGIN
    INSERT INTO served_changes (zone_id, name) VALUES (old.zone_id, old.name);
END;

-- A host's last domain gone: its challenge values go with it.
CREATE TRIGGER acme_challenges_host_removed AFTER DELETE ON domains
WHEN NOT EXISTS (SELECT 1 FROM domains WHERE fqdn = old.fqdn)
BEGIN
    DELETE FROM acme_challenges WHERE name = '_acme-challenge.' || old.fqdn;
END;

-- migration 8: login blocks, for admins to see and lift

-- The password-guessing throttle lives in the service's memory (README, "Password guessing");
-- this is what admins see of it: one row per account or client address blocked now, written
-- by the service when a block starts (within about a second), and emptied at each start (a
-- restart ends every block). `certadns-ddns user unlock` sets `unlock_requested_at`; the
-- running service lifts the block within a second and deletes the row.
CREATE TABLE login_blocks (
    id                  INTEGER PRIMARY KEY,
    -- The account whose logins (username or email) failed, or the client address that
    -- failed: exactly one of them.
    user_id             INTEGER UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    client              TEXT    UNIQUE,
    -- Failures within the window that started the block.
    failures            INTEGER NOT NULL CHECK (failures >= 1),
    blocked_at          TEXT    NOT NULL,
    -- Passwords are not checked for it until then (`badauth` at once).
    blocked_until       TEXT    NOT NULL,
    unlock_requested_at TEXT,
    CHECK ((user_id IS NULL) <> (client IS NULL))
);

-- migration 9: TSIG keys

-- Shared-secret keys (RFC 8945) for RFC 2136 updates: `nsupdate`, DHCP servers, ACME clients,
-- Kubernetes controllers. HMAC needs the secret whole, so it is kept as it is (base64); the
-- database file is private to the service's user (0600), and the CLI shows a secret once, at
-- creation. An account's key may change what the account may change through `/nic/update`
-- and `/acme/*` (its names' A, AAAA and `_acme-challenge` TXT); an admin's key belongs to a
-- zone, or to the names at and below `subtree` in it, for the record `types` listed.
CREATE TABLE tsig_keys (
    id           INTEGER PRIMARY KEY,
    -- The key's name as clients send it: a DNS name, lower case, no final dot.
    name         TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    algorithm    TEXT    NOT NULL CHECK (algorithm IN ('hmac-sha256', 'hmac-sha512', 'hmac-sha1')),
    secret       TEXT    NOT NULL CHECK (length(secret) BETWEEN 16 AND 200),
    user_id      INTEGER REFERENCES users (id) ON DELETE CASCADE,
    zone_id      INTEGER REFERENCES zones (id) ON DELETE CASCADE,
    subtree      TEXT    COLLATE NOCASE,
    -- For an admin's key: the record types it may change, comma-separated (`A,AAAA,TXT`).
    types        TEXT,
    is_active    INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at   TEXT    NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT,
    CHECK ((user_id IS NULL) <> (zone_id IS NULL)),
    CHECK (subtree IS NULL OR zone_id IS NOT NULL),
    CHECK ((zone_id IS NULL) = (types IS NULL))
);
CREATE INDEX tsig_keys_user ON tsig_keys (user_id) WHERE user_id IS NOT NULL;

-- migration 10: TSIG in the audit trail

-- Changes made through RFC 2136 are authenticated by a TSIG key: `auth_method` takes 'tsig', and
-- `tsig_key` names the key (NULL for every other method). SQLite cannot alter a CHECK
-- constraint; its documented procedure for loosening one (https://sqlite.org/lang_altertable.html,
-- "Making Other Kinds Of Table Schema Changes") rewrites the table's definition in place: O(1),
-- where a copy of the table would stall a start on a large audit trail. The migration runner
-- bumps `schema_version` after this migration and reads the schema again, as the procedure
-- requires (tests: store/schema.rs).
ALTER TABLE domain_updates ADD COLUMN tsig_key TEXT;
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql,
                     'CHECK (auth_method IN (''bearer'', ''basic'', ''query'', ''admin''))',
                     'CHECK (auth_method IN (''bearer'', ''basic'', ''query'', ''admin'', ''tsig''))')
 WHERE type = 'table' AND name = 'domain_updates';
PRAGMA writable_schema = OFF;

-- migration 11: PTR and DHCID records

-- For admins' TSIG keys of reverse zones and DHCP servers (Kea's DHCP-DDNS adds a DHCID, RFC
-- 4701, beside each address it publishes): `records.type` takes PTR and DHCID, loosened in place
-- as migration 10 does.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql,
                     'CHECK (type IN (''A'', ''AAAA'', ''CNAME'', ''MX'', ''TXT'', ''NS'', ''SRV'', ''CAA''))',
                     'CHECK (type IN (''A'', ''AAAA'', ''CNAME'', ''MX'', ''TXT'', ''NS'', ''SRV'', ''CAA'', ''PTR'', ''DHCID''))')
 WHERE type = 'table' AND name = 'records';
PRAGMA writable_schema = OFF;

-- migration 12: DNSSEC keys and zone metadata

-- pdns signs our zones live (`remote-dnssec=yes`) with the keys kept here, through the remote
-- backend's key methods (`getDomainKeys`, `addDomainKey`, ...), so that `pdnsutil` and
-- `certadns-ddns zone secure` manage the same keys. `content` is the private key in BIND's
-- `Private-key-format: v1.2` text, as pdns reads and writes it: it never leaves the service's
-- 0600 database file but to pdns on its backend connection. `flags` 257 is a KSK or CSK (the
-- one the parent's DS points to), 256 a ZSK. An inactive key is published but signs nothing;
-- an unpublished one is not in the DNSKEY set (the steps of a rollover).
CREATE TABLE dnssec_keys (
    id          INTEGER PRIMARY KEY,
    zone_id     INTEGER NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    flags       INTEGER NOT NULL CHECK (flags IN (256, 257)),
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    published   INTEGER NOT NULL DEFAULT 1 CHECK (published IN (0, 1)),
    content     TEXT    NOT NULL CHECK (content LIKE 'Private-key-format: %' AND length(content) <= 8192),
    created_at  TEXT    NOT NULL
);
CREATE INDEX dnssec_keys_zone ON dnssec_keys (zone_id);

-- A zone's pdns metadata as pdns sets it (`setDomainMetadata`: `pdnsutil set-nsec3`,
-- `set-meta`): NSEC3PARAM, NSEC3NARROW, SOA-EDIT, PUBLISH-CDS... One row per value, in the
-- order given. ALSO-NOTIFY and ALLOW-AXFR-FROM are not kept here: they follow the zone's
-- `also_notify` (`certadns-ddns zone notify`).
CREATE TABLE zone_metadata (
    zone_id     INTEGER NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    position    INTEGER NOT NULL CHECK (position >= 0),
    content     TEXT    NOT NULL CHECK (length(content) <= 4096),
    PRIMARY KEY (zone_id, kind, position)
) WITHOUT ROWID;
