-- sd2 store, schema version 1. The contract between the coordinator (the only writer),
-- results/ (reader) and sd2ctl (reader). Migrations live in storage/migrations.cc; this file is
-- the version-1 DDL they apply. docs/storage.md explains every column.
--
-- Times are Unix seconds (REAL). JSON columns hold canonical JSON (sorted keys).

CREATE TABLE sweeps (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL,
  spec_path   TEXT,                    -- file it was submitted from (informational)
  spec_toml   TEXT NOT NULL,           -- the submitted file's text, verbatim
  priority    INTEGER NOT NULL DEFAULT 0,
  state       TEXT NOT NULL DEFAULT 'active'
              CHECK (state IN ('active', 'done', 'cancelled')),
  created_at  REAL NOT NULL
);

-- A trial is one thing to train, identified by its key (hash of the canonical config).
-- The same key submitted by two sweeps is one trial: it is never trained twice.
CREATE TABLE trials (
  id           INTEGER PRIMARY KEY,
  trial_key    TEXT NOT NULL UNIQUE,
  method       TEXT NOT NULL,
  scale        INTEGER NOT NULL,        -- training images
  seed         INTEGER NOT NULL,
  config_json  TEXT NOT NULL,           -- canonical trial config (docs/sweeps.md)
  priority     INTEGER NOT NULL DEFAULT 0,
  state        TEXT NOT NULL DEFAULT 'queued'
               CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  attempts     INTEGER NOT NULL DEFAULT 0,   -- attempts started so far
  max_attempts INTEGER NOT NULL DEFAULT 3,
  not_before   REAL NOT NULL DEFAULT 0,      -- retry back-off: not scheduled before this time
  depends_on   INTEGER REFERENCES trials(id),-- e.g. a linear probe runs after its encoder's trial
  last_error   TEXT,
  created_at   REAL NOT NULL,
  updated_at   REAL NOT NULL
);

CREATE TABLE sweep_trials (
  sweep_id  INTEGER NOT NULL REFERENCES sweeps(id),
  trial_id  INTEGER NOT NULL REFERENCES trials(id),
  ordinal   INTEGER NOT NULL,           -- position in the sweep's expansion
  reused    INTEGER NOT NULL DEFAULT 0, -- 1: the key already had a succeeded attempt at submit
  PRIMARY KEY (sweep_id, trial_id)
);

CREATE TABLE attempts (
  id               INTEGER PRIMARY KEY,
  trial_id         INTEGER NOT NULL REFERENCES trials(id),
  number           INTEGER NOT NULL,   -- 1, 2, ... per trial
  state            TEXT NOT NULL
                   CHECK (state IN ('queued', 'leased', 'running', 'succeeded', 'failed',
                                    'lost', 'preempted', 'cancelled')),
  group_id         TEXT,
  host             TEXT,
  git_commit       TEXT,
  versions_json    TEXT,               -- library versions reported by the worker
  variant_json     TEXT,               -- method variants the run used (e.g. loss reductions)
  lease_expires_at REAL,
  created_at       REAL NOT NULL,
  started_at       REAL,
  ended_at         REAL,
  error            TEXT,
  UNIQUE (trial_id, number)
);
CREATE INDEX attempts_by_state ON attempts(state);

-- Idempotent ingestion: a resent (attempt, seq) is ignored.
CREATE TABLE metrics (
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  seq        INTEGER NOT NULL,
  step       INTEGER NOT NULL,
  name       TEXT NOT NULL,
  value      REAL NOT NULL,
  wall_time  REAL NOT NULL,
  PRIMARY KEY (attempt_id, seq)
) WITHOUT ROWID;

-- Per-sample eval scores: every metric and table is recomputed from these.
-- label: 1 = fake, 0 = real. score: probability of fake.
CREATE TABLE scores (
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  eval_set   TEXT NOT NULL,
  sample_id  TEXT NOT NULL,
  video_id   TEXT,
  label      INTEGER NOT NULL CHECK (label IN (0, 1)),
  type       TEXT,
  score      REAL NOT NULL,
  PRIMARY KEY (attempt_id, eval_set, sample_id)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
  id         INTEGER PRIMARY KEY,
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  step       INTEGER NOT NULL,
  path       TEXT NOT NULL,
  digest     TEXT,
  created_at REAL NOT NULL,
  UNIQUE (attempt_id, step)
);

CREATE TABLE groups (
  id         TEXT PRIMARY KEY,
  host       TEXT,
  size       INTEGER NOT NULL,
  devices    TEXT,                     -- "cpu" or "cuda"
  version    TEXT,
  state      TEXT NOT NULL DEFAULT 'idle',
  last_seen  REAL NOT NULL
);

CREATE TABLE events (
  id         INTEGER PRIMARY KEY,
  time       REAL NOT NULL,
  kind       TEXT NOT NULL,
  sweep_id   INTEGER,
  trial_id   INTEGER,
  attempt_id INTEGER,
  message    TEXT
);
