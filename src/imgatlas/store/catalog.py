"""Catalog schema: images, runs and the bookkeeping of feature stores."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import Enum

SCHEMA_VERSION = 1


class Status(str, Enum):
    """Why an image is (not) usable. Everything but ``ok`` comes with a one-line reason."""

    OK = "ok"
    EMPTY = "empty"
    TRUNCATED = "truncated"
    NOT_IMAGE = "not_image"
    TOO_LARGE = "too_large"
    CORRUPT = "corrupt"
    UNREADABLE = "unreadable"
    BROKEN_SYMLINK = "broken_symlink"
    SYMLINK_LOOP = "symlink_loop"
    DECODE_ERROR = "decode_error"  # passed the scan but failed when embedded
    MISSING = "missing"  # was scanned once, gone at the latest scan

    def __str__(self) -> str:
        return self.value


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    path        BLOB NOT NULL UNIQUE,  -- os.fsencode(absolute path): survives non-UTF-8 names
    display     TEXT NOT NULL,         -- printable form of the path
    root        BLOB NOT NULL,
    size        INTEGER,
    mtime_ns    INTEGER,
    sha256      TEXT,
    width       INTEGER,
    height      INTEGER,
    format      TEXT,
    mode        TEXT,
    label       TEXT,
    status      TEXT NOT NULL,
    reason      TEXT,
    scanned_at  REAL NOT NULL,
    probe_version INTEGER              -- which probe recorded the row; NULL = the first
);
CREATE INDEX IF NOT EXISTS images_status ON images(status);
CREATE INDEX IF NOT EXISTS images_sha ON images(sha256);
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,         -- running | done | failed | interrupted
    started_at  REAL NOT NULL,
    finished_at REAL,
    version     TEXT NOT NULL,
    params      TEXT NOT NULL,         -- JSON: what was asked, the seed, the input
                                       -- fingerprint, every estimator's get_params()
    results     TEXT,                  -- JSON
    error       TEXT                   -- one line: why a failed/interrupted run stopped
);
CREATE TABLE IF NOT EXISTS stores (
    key         TEXT PRIMARY KEY,
    backbone    TEXT NOT NULL,
    cfg         TEXT NOT NULL,         -- JSON: everything that changes the numbers
    dim         INTEGER NOT NULL,
    dtype       TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    run_id      INTEGER NOT NULL,
    image_id    INTEGER NOT NULL,
    cluster     INTEGER NOT NULL,      -- -1 = noise (density methods)
    silhouette  REAL,
    PRIMARY KEY (run_id, image_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS centre_distance (  -- squared, in the run's clustering space
    run_id      INTEGER NOT NULL,
    image_id    INTEGER NOT NULL,
    distance    REAL NOT NULL,
    PRIMARY KEY (run_id, image_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cluster_names (
    run_id      INTEGER NOT NULL,
    cluster     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    PRIMARY KEY (run_id, cluster)
);
CREATE TABLE IF NOT EXISTS user_labels (  -- labels given by a person (CLI, web app, CSV)
    image_id    INTEGER PRIMARY KEY,
    label       TEXT NOT NULL,
    source      TEXT NOT NULL,         -- e.g. 'csv:labels.csv', 'web', 'suggested'
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pixel_stats (  -- measured from the pixels (inspect/_pixels.py)
    image_id    INTEGER PRIMARY KEY,
    sha256      TEXT NOT NULL,         -- the content measured: a changed file is measured again
    version     INTEGER NOT NULL,      -- STATS_VERSION of the measures
    phash       INTEGER NOT NULL,      -- 64-bit perceptual hash, signed
    edge_width  REAL,                  -- blur: sigma of the sharpest edges (px); NULL = none
    mean        REAL, p01 REAL, p99 REAL, std REAL, entropy REAL, chroma REAL,
    side        INTEGER,
    turns       BLOB                   -- the hashes of the picture mirrored and turned
);
CREATE TABLE IF NOT EXISTS inspected (    -- compared with the collection by inspect
    image_id    INTEGER PRIMARY KEY,
    sha256      TEXT NOT NULL,
    store       TEXT NOT NULL,         -- the feature store it was compared in
    neighbours  BLOB NOT NULL          -- float32 cosine to its nearest other images
);
CREATE TABLE IF NOT EXISTS duplicate_pairs (  -- two copies of one picture; a < b
    a           INTEGER NOT NULL,
    b           INTEGER NOT NULL,
    similarity  REAL NOT NULL,         -- 0..1, higher = closer
    cosine      REAL,
    hash_distance INTEGER,
    evidence    TEXT NOT NULL,         -- what decided it: same bytes, hash, verified match
    found_at    REAL NOT NULL,
    PRIMARY KEY (a, b)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flags (       -- the latest inspection's flags
    image_id    INTEGER NOT NULL,
    flag        TEXT NOT NULL,
    score       REAL NOT NULL,
    reason      TEXT NOT NULL,
    run_id      INTEGER NOT NULL,
    PRIMARY KEY (image_id, flag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS image_tags (  -- top ImageNet classes from a store's features
    store       TEXT NOT NULL,
    image_id    INTEGER NOT NULL,
    classes     BLOB NOT NULL,         -- int16 class indices, most likely first
    probs       BLOB NOT NULL,         -- float32 softmax probabilities
    PRIMARY KEY (store, image_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS embedded (
    store       TEXT NOT NULL,
    image_id    INTEGER NOT NULL,
    PRIMARY KEY (store, image_id)
) WITHOUT ROWID;
"""


# Columns added to a table after it first shipped: (table, column, declaration). Added on
# the next write-open, so a workspace keeps working across versions within a schema version.
ADDED_COLUMNS = (("runs", "error", "TEXT"),
                 # which probe recorded the row (scan/_probe.py PROBE_VERSION); NULL = 1
                 ("images", "probe_version", "INTEGER"),
                 ("pixel_stats", "turns", "BLOB"))

IMAGE_COLUMNS = ("id, path, display, sha256, label, status, reason, width, height, root, size, "
                 "format, mode")


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: bytes
    display: str
    sha256: str | None
    label: str | None
    status: str
    reason: str | None
    width: int | None = None
    height: int | None = None
    root: bytes | None = None
    size: int | None = None
    format: str | None = None
    mode: str | None = None


def connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is one transaction.
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA foreign_keys=ON")
    return con
