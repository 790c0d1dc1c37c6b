"""The name index: the words of every file name, and a trigram index over the vocabulary.

A substring query must find "aibu du" inside "music/gaibu duga.mp3". Every maximal run of
letters and digits in the query lies inside one such run (a word) of any name that contains
it, so the query's longest run narrows the search to the files holding a word that contains
it. The trigram index covers only the vocabulary, whose posting lists are short, not every
name (a trigram index over a million names made common-syllable queries cost ~10 ms); GLOB on
the full name then checks each candidate exactly.

The index is written behind: SendIndex stores files only, and the tracker's background upkeep
indexes them in slices soon after (a 100,000-file publish costs the request ~3 s instead of ~7).
Files above the indexed watermark are candidates for every query until then, so results are
never missing anything, only slower for a few seconds. Postings of deleted files are pruned in
the background too: a stale posting costs a lookup, as every candidate is checked against the
live files table.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable

_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits, in any script
_GLOB_SYNTAX = re.compile(r"\*|\?|\[[^\]]*\]?")
_SQL_VARS = 500  # values per IN (...) list
PRUNE_WORDS_PER_SLICE = 200
INDEX_FILES_PER_SLICE = 5000  # ~0.2 s of work: writers (heartbeats, logins) never wait long


def words_of(name_lower: str) -> set[str]:
    return set(_WORD.findall(name_lower))


def key_word(pattern_lower: str, glob: bool) -> str:
    """The longest word-run every match must contain ('' when the pattern has none)."""
    literals = _GLOB_SYNTAX.split(pattern_lower) if glob else [pattern_lower]
    runs = [w for text in literals for w in _WORD.findall(text)]
    return max(runs, key=len, default="")


def candidates_sql(word: str) -> tuple[str, list[object]]:
    """A condition on files f that keeps (at least) every file with a word containing word."""
    if len(word) >= 3:
        vocabulary = "SELECT rowid FROM words_fts WHERE word GLOB ?"
        args: list[object] = [f"*{word}*"]
    else:  # too short for trigrams: scan the vocabulary, still far smaller than the names
        vocabulary = "SELECT id FROM words WHERE instr(word, ?) > 0"
        args = [word]
    not_yet_indexed = "SELECT id FROM files WHERE id > (SELECT upto FROM index_progress WHERE name = 'files')"
    return f"f.id IN (SELECT file_id FROM file_words WHERE word_id IN ({vocabulary}) UNION ALL {not_yet_indexed})", args


def watermark(c: sqlite3.Connection) -> int:
    """Files with ids up to this are in the index; new files must get larger ids."""
    row = c.execute("SELECT upto FROM index_progress WHERE name = 'files'").fetchone()
    return int(row[0]) if row else 0


def catch_up(c: sqlite3.Connection) -> bool:
    """Index one slice of files above the watermark; True while more are waiting."""
    rows = c.execute(
        "SELECT id, name_lower FROM files WHERE id > ? ORDER BY id LIMIT ?", (watermark(c), INDEX_FILES_PER_SLICE)
    ).fetchall()
    if not rows:
        return False
    add(c, rows)
    c.execute("UPDATE index_progress SET upto = ? WHERE name = 'files'", (rows[-1][0],))
    return len(rows) == INDEX_FILES_PER_SLICE


def add(c: sqlite3.Connection, files: Iterable[tuple[int, str]]) -> None:
    """Index (file id, lowercase name) pairs; new words join the vocabulary."""
    per_file = [(file_id, words_of(name)) for file_id, name in files]
    wanted = set().union(*(w for _, w in per_file)) if per_file else set()
    ids: dict[str, int] = {}
    ordered = sorted(wanted)
    for i in range(0, len(ordered), _SQL_VARS):
        part = ordered[i : i + _SQL_VARS]
        ids.update(c.execute(f"SELECT word, id FROM words WHERE word IN ({','.join('?' * len(part))})", part).fetchall())
    new = [w for w in ordered if w not in ids]
    if new:
        (last,) = c.execute("SELECT coalesce(max(id), 0) FROM words").fetchone()
        rows = [(last + 1 + i, w) for i, w in enumerate(new)]
        c.executemany("INSERT INTO words(id, word) VALUES (?,?)", rows)
        c.executemany("INSERT INTO words_fts(rowid, word) VALUES (?,?)", rows)
        ids.update((w, i) for i, w in rows)
    postings = sorted((ids[w], file_id) for file_id, words in per_file for w in words)  # B-tree order: fewer pages
    c.executemany("INSERT OR IGNORE INTO file_words(word_id, file_id) VALUES (?,?)", postings)


def tidy(c: sqlite3.Connection, cursor: int, prune: bool) -> tuple[bool, int]:
    """One bounded slice of upkeep: index new files first, then merge index segments, then (when
    prune) drop the stale postings of one range of words. Returns (more work remains, next cursor);
    the cursor is back at 0 when a pruning pass over the vocabulary is complete.
    """
    if catch_up(c):
        return True, cursor
    before = c.total_changes
    c.execute("INSERT INTO words_fts(words_fts, rank) VALUES ('merge', -16)")
    merged = c.total_changes - before >= 2
    if not prune:
        return merged, cursor
    c.execute(
        "DELETE FROM file_words WHERE word_id >= ? AND word_id < ? AND file_id NOT IN (SELECT id FROM files)",
        (cursor, cursor + PRUNE_WORDS_PER_SLICE),
    )
    (top,) = c.execute("SELECT coalesce(max(id), 0) FROM words").fetchone()
    cursor += PRUNE_WORDS_PER_SLICE
    if cursor > top:
        return merged, 0
    return True, cursor
