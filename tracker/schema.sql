-- The tracker's SQLite schema, run at every start (idempotent).
PRAGMA foreign_keys = ON;

CREATE TABLE IF NOT EXISTS accounts (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    REAL NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0  -- 1: refused at login (`p2p-tracker user disable`)
);

CREATE TABLE IF NOT EXISTS sessions (
    id         INTEGER PRIMARY KEY,
    account    TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,   -- sha256 of the bearer token; the token itself is never stored
    address    TEXT NOT NULL,          -- '' for client-only sessions
    expires_at REAL NOT NULL,           -- 0: ended; its files are deleted in the background
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions(expires_at);
CREATE INDEX IF NOT EXISTS sessions_by_account ON sessions(account, address);

CREATE TABLE IF NOT EXISTS files (
    id                INTEGER PRIMARY KEY,
    session_id        INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    name_folded       TEXT NOT NULL,   -- the name as matched: name_index.fold (case, accents)
    size              INTEGER NOT NULL,
    sha256            TEXT NOT NULL,
    chunk_size        INTEGER NOT NULL,
    chunk_list_sha256 TEXT NOT NULL,
    partial           INTEGER NOT NULL DEFAULT 0,  -- 1 while the peer is still downloading it
    UNIQUE (session_id, name)
);
CREATE INDEX IF NOT EXISTS files_by_sha256 ON files(sha256, session_id);

-- The name index (see tracker/name_index.py): the words of every name and their postings.
-- Substring and glob queries find words through a trigram map kept in memory, then check names.
CREATE TABLE IF NOT EXISTS words (
    id   INTEGER PRIMARY KEY,
    word TEXT NOT NULL UNIQUE
);
-- A posting carries its content's sha_key (the first 60 bits of its sha256), so a one-word query
-- takes the first page of contents from the postings alone, without fetching every file. New
-- files have the largest ids: postings append to each word's range, which keeps indexing cheap.
-- (Databases of earlier versions are upgraded once at start: name_index.upgrade.)
CREATE TABLE IF NOT EXISTS file_words (
    word_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,   -- may outlive its file until pruned; queries join live files
    sha_key INTEGER NOT NULL,
    PRIMARY KEY (word_id, file_id)
) WITHOUT ROWID;
-- Postings indexed lately, merged into file_words a range of words at a time by the upkeep.
-- Written to file_words directly, every slice of new files rewrote about a page of that large
-- table per two postings (~60 MB of WAL per 5,000 files; 12 s to index 100,000 names at a million
-- files). This table is small and stays in cache, and a merge rewrites each page once (~6 s in all).
CREATE TABLE IF NOT EXISTS file_words_recent (
    word_id INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    sha_key INTEGER NOT NULL,
    PRIMARY KEY (word_id, file_id)
) WITHOUT ROWID;
DROP TABLE IF EXISTS words_fts;  -- earlier versions kept the trigram map here
-- How far the index has caught up with `files` (it is written behind, in the background).
CREATE TABLE IF NOT EXISTS index_progress (
    name TEXT PRIMARY KEY,
    upto INTEGER NOT NULL
);
INSERT OR IGNORE INTO index_progress(name, upto) VALUES ('files', 0);

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
