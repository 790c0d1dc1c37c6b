"""The name index: the words of every file name, and a trigram map over the vocabulary.

A substring query must find "aibu du" inside "music/gaibu duga.mp3". Every maximal run of
letters and digits in the query lies inside one such run (a word) of any name that contains
it, so any run of the query narrows the search to the files holding a word that contains it;
the store starts from the run whose words hold the fewest postings. Postings (word -> files)
are stored in SQLite and mirrored in memory as compact arrays of file ids (8 bytes a posting),
where the postings of a pattern's runs are intersected in C (a title's two words: ~20 us, where
SQLite's INTERSECT through temporary B-trees took ~0.3 ms). The vocabulary (tens of thousands
of words, not a million names) lives in memory too, with a trigram map that finds the words
containing a string in microseconds (an FTS5 trigram table over the vocabulary cost ~0.1 ms a
query; one over every full name ~10 ms, as common trigrams have huge posting lists); strings of
one or two characters have their word lists ready. GLOB on the full name then checks each
candidate exactly.

The index is written behind: SendIndex stores files only, and the tracker's background upkeep
indexes them in slices soon after (a 100,000-file publish costs the request ~3 s instead of ~7).
Files above the indexed watermark are candidates for every query until then, so results are
never missing anything, only slower for a few seconds. Postings of deleted files are pruned in
the background too: a stale posting costs a lookup, as every candidate is checked against the
live files table.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import unicodedata
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

log = logging.getLogger(__name__)
_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits, in any script
_GLOB_SYNTAX = re.compile(r"\*|\?|\[[^\]]*\]?")
PRUNE_WORDS_PER_SLICE = 200
MERGE_POSTINGS_PER_SLICE = 50_000  # recent postings moved into file_words per slice: ~0.1 s
POSTINGS_TABLES = ("file_words", "file_words_recent")  # see schema.sql
INTERSECT_RUNS = 3  # at most this many runs' postings are intersected
INDEX_FILES_PER_SLICE = 5000  # ~0.5 s of work at a million files: writers (logins, heartbeats) wait little
NOT_YET_INDEXED = "SELECT id FROM files WHERE id > (SELECT upto FROM index_progress WHERE name = 'files')"
WORD_POSTINGS = (  # ? = the word ids, as JSON; SQLite takes the condition into both tables' keys
    "FROM (SELECT word_id, file_id, sha_key FROM file_words UNION ALL SELECT word_id, file_id, sha_key FROM file_words_recent)"
    " WHERE word_id IN (SELECT value FROM json_each(?))"
)


_ACCENTS = re.compile("[\u0300-\u036f]")  # the combining diacritical marks of Latin, Greek and Cyrillic


def fold(text: str) -> str:
    """text as names are matched: case-folded ("STRASSE" finds "straße"), in one normal form (a
    name typed on Linux finds one a Mac wrote decomposed), compatibility forms made plain (a
    fullwidth or ligature letter is the letter) and accents dropped ("cafe" finds "Café", as
    desktop search does). Only accents: marks that make another letter, as kana's voicing, stay."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return unicodedata.normalize("NFC", _ACCENTS.sub("", decomposed))


def words_of(name_folded: str) -> set[str]:
    return set(_WORD.findall(name_folded))


def word_runs(pattern_folded: str, glob: bool) -> list[str]:
    """The runs of letters and digits that every matching name must contain, each within a word."""
    literals = _GLOB_SYNTAX.split(pattern_folded) if glob else [pattern_folded]
    return [w for text in literals for w in _WORD.findall(text)]


def _trigrams(word: str) -> set[str]:
    return {word[i : i + 3] for i in range(len(word) - 2)}


def _short_grams(word: str) -> set[str]:
    return set(word) | {word[i : i + 2] for i in range(len(word) - 1)}


@dataclass(frozen=True)
class Candidates:
    """The words containing one run of a pattern, and how many postings they hold between them."""

    run: str
    word_ids: list[int]
    postings: int


class Vocabulary:
    """Every word of the index with its id, which words contain a given trigram, and the
    postings of every word (file ids, stale ones too until pruned).

    Loaded from SQLite at start; words and postings are added inside the transaction that stores
    them, before it commits, so memory always holds at least what a reader's snapshot holds (what
    a rolled-back transaction leaves behind only costs a few candidates that the query drops).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._by_trigram: dict[str, set[str]] = {}
        # runs too short for trigrams: the ids of the words holding each 1- and 2-character
        # string, as compact arrays (a scan of 400,000 words took ~100 ms under the lock)
        self._by_short: dict[str, array[int]] = {}
        self._postings: dict[int, array[int]] = {}  # word id -> file ids; arrays only grow (or are replaced)

    def load(self, c: sqlite3.Connection) -> None:
        for word_id, word in c.execute("SELECT id, word FROM words"):
            self.add(word, word_id)
        self.reload_postings(c, 0, None)

    def reload_postings(self, c: sqlite3.Connection, first_id: int, end_id: int | None) -> None:
        """The postings of word ids in [first_id, end_id) as SQLite holds them (at start, and after a prune)."""
        where, args = ("word_id >= ?", (first_id,)) if end_id is None else ("word_id >= ? AND word_id < ?", (first_id, end_id))
        fresh: dict[int, array[int]] = {}
        for table in POSTINGS_TABLES:
            cursor = c.execute(f"SELECT word_id, file_id FROM {table} WHERE {where}", args)  # in key order
            while rows := cursor.fetchmany(100_000):
                for word_id, group in groupby(rows, itemgetter(0)):
                    fresh.setdefault(word_id, array("q")).extend(row[1] for row in group)
        with self._lock:
            if end_id is None:
                self._postings = fresh
                return
            for word_id in range(first_id, end_id):
                self._postings.pop(word_id, None)
            self._postings.update(fresh)

    def add_postings(self, postings: list[tuple[int, int]]) -> None:
        """(word id, file id) pairs, sorted."""
        with self._lock:
            for word_id, group in groupby(postings, itemgetter(0)):
                self._postings.setdefault(word_id, array("q")).extend(p[1] for p in group)

    def file_ids(self, word_ids: Iterable[int]) -> set[int]:
        """The files holding any of these words (and stale ids of deleted files, until pruned)."""
        found: set[int] = set()
        with self._lock:
            for word_id in word_ids:
                holders = self._postings.get(word_id)
                if holders is not None:
                    found.update(holders)  # C speed: ~10 ns a posting
        return found

    def add(self, word: str, word_id: int) -> None:
        with self._lock:
            if word in self._ids:
                return
            self._ids[word] = word_id
            for trigram in _trigrams(word):
                self._by_trigram.setdefault(trigram, set()).add(word)
            for short in _short_grams(word):
                holders = self._by_short.get(short)
                if holders is None:
                    holders = self._by_short[short] = array("q")
                holders.append(word_id)

    def get(self, word: str) -> int | None:
        return self._ids.get(word)

    def containing(self, text: str) -> list[int]:
        """Ids of the words that contain text."""
        with self._lock:
            if len(text) >= 3:
                holders = [self._by_trigram.get(t) for t in _trigrams(text)]
                if any(h is None for h in holders):
                    return []
                words: Iterable[str] = min(holders, key=len)  # type: ignore[arg-type]
            else:
                return list(self._by_short.get(text, ()))
            return [self._ids[w] for w in words if text in w]

    def candidates(self, run: str, cap: int) -> Candidates:
        """The words holding run and their postings, counted up to just above cap."""
        word_ids = self.containing(run)
        total = 0
        with self._lock:
            for word_id in word_ids:
                holders = self._postings.get(word_id)
                total += len(holders) if holders is not None else 0
                if total > cap:
                    break
        return Candidates(run, word_ids, total)


def rarest(vocabulary: Vocabulary, runs: Iterable[str], cap: int) -> list[Candidates]:
    """The runs a match must contain, rarest first (by the postings of the words holding them,
    counted up to just above cap). Runs of one or two characters narrow little and their word
    lists are long: they count only when the pattern has no longer run."""
    distinct = set(runs)
    chosen = {r for r in distinct if len(r) >= 3} or distinct
    return sorted((vocabulary.candidates(run, cap) for run in chosen), key=lambda c: c.postings)


def runs_to_intersect(vocabulary: Vocabulary, pattern_folded: str, glob: bool, broad: int) -> list[Candidates]:
    """The runs whose postings to intersect for a pattern: the rarest, and up to two more that are
    not much more common; none when even the rarest holds over `broad` postings (or the pattern
    has no word), as walking contents in sha256 order to a full page is cheaper then."""
    ranked = rarest(vocabulary, word_runs(pattern_folded, glob), broad)
    if not ranked or ranked[0].postings > broad:
        return []
    bound = min(broad, 10 * ranked[0].postings + 100)
    return [r for r in ranked[:INTERSECT_RUNS] if r.postings <= bound]


def candidates_sql(vocabulary: Vocabulary, runs: list[Candidates]) -> tuple[str, list[object]]:
    """A condition on files f that keeps (at least) every file holding a word of each run.

    One run: its words' postings, read by SQLite. Several (a title's words): their postings
    intersected in memory, so that SQLite fetches only the few files holding all of them.
    Files not indexed yet are candidates for every query.
    """
    if len(runs) == 1:
        return f"f.id IN (SELECT file_id {WORD_POSTINGS} UNION ALL {NOT_YET_INDEXED})", [json.dumps(runs[0].word_ids)]
    holding_all = set.intersection(*(vocabulary.file_ids(r.word_ids) for r in runs))
    return ids_sql(sorted(holding_all))


def ids_sql(file_ids: list[int]) -> tuple[str, list[object]]:
    """A condition on files f that keeps these files and those not indexed yet."""
    return f"f.id IN (SELECT value FROM json_each(?) UNION ALL {NOT_YET_INDEXED})", [json.dumps(file_ids)]


def sha_key(sha256_hex: str) -> int:
    """The first 60 bits of a sha256, as an integer that sorts like the sha256 itself."""
    return int(sha256_hex[:15], 16)


FILE_WORDS_LAYOUT = [("word_id", 1), ("file_id", 2), ("sha_key", 0)]  # (column, place in the primary key)


def set_aside_old_postings(c: sqlite3.Connection) -> None:
    """Before the schema runs: postings stored by an earlier version move aside for upgrade()."""
    layout = [(row[1], row[5]) for row in c.execute("PRAGMA table_info(file_words)")]
    if layout and layout != FILE_WORDS_LAYOUT:
        c.execute("ALTER TABLE file_words RENAME TO file_words_old")


def upgrade(c: sqlite3.Connection) -> None:
    """After the schema ran: give postings set aside their sha_key, in one transaction (once, and
    again if interrupted; ~30 s at a million files)."""
    if not c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'file_words_old'").fetchone():
        return
    log.warning("upgrading the name index: postings get their content's sha_key (once; ~30 s a million files)")
    c.create_function("p2p_sha_key", 1, sha_key, deterministic=True)
    with _transaction(c):
        c.execute("DELETE FROM file_words")
        c.execute(
            "INSERT INTO file_words(word_id, file_id, sha_key) SELECT w.word_id, w.file_id, p2p_sha_key(f.sha256)"
            " FROM file_words_old w JOIN files f ON f.id = w.file_id ORDER BY 1, 2"  # stale postings go too
        )
        c.execute("DROP TABLE file_words_old")


def refold(c: sqlite3.Connection) -> None:
    """After the schema ran: databases of earlier versions matched names lowercased only (column
    name_lower). Rename the column and fold every name; a name that folds otherwise (accents,
    other scripts: a few) gets a new id above every other, so the upkeep indexes its new words as
    it does a new file's, and its old postings go stale and are pruned. Once, in one transaction."""
    if "name_lower" not in {row[1] for row in c.execute("PRAGMA table_info(files)")}:
        return
    log.warning("upgrading the name index: names match without regard to accents and case in any script (once)")
    c.create_function("p2p_fold", 1, fold, deterministic=True)
    with _transaction(c):
        c.execute("ALTER TABLE files RENAME COLUMN name_lower TO name_folded")
        (top,) = c.execute("SELECT coalesce(max(id), 0) FROM files").fetchone()
        above = max(top, watermark(c))
        c.execute("UPDATE files SET id = id + ?, name_folded = p2p_fold(name) WHERE name_folded <> p2p_fold(name)", (above,))


@contextmanager
def _transaction(c: sqlite3.Connection) -> Iterator[None]:
    """An upgrade's statements, applied all or none (another process waits for the write lock)."""
    c.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        c.execute("ROLLBACK")
        raise
    c.execute("COMMIT")


def watermark(c: sqlite3.Connection) -> int:
    """Files with ids up to this are in the index; new files must get larger ids."""
    row = c.execute("SELECT upto FROM index_progress WHERE name = 'files'").fetchone()
    return int(row[0]) if row else 0


def catch_up(c: sqlite3.Connection, vocabulary: Vocabulary) -> bool:
    """Index one slice of files above the watermark; True while more are waiting."""
    rows = c.execute(
        "SELECT id, name_folded, sha256 FROM files WHERE id > ? ORDER BY id LIMIT ?", (watermark(c), INDEX_FILES_PER_SLICE)
    ).fetchall()
    if not rows:
        return False
    add(c, vocabulary, rows)
    c.execute("UPDATE index_progress SET upto = ? WHERE name = 'files'", (rows[-1][0],))
    return len(rows) == INDEX_FILES_PER_SLICE


def add(c: sqlite3.Connection, vocabulary: Vocabulary, files: Iterable[tuple[int, str, str]]) -> None:
    """Index (file id, folded name, sha256) triples; new words join the vocabulary."""
    per_file = [(file_id, sha_key(sha256), words_of(name)) for file_id, name, sha256 in files]
    wanted = set().union(*(w for _, _, w in per_file)) if per_file else set()
    ids = {w: i for w in wanted if (i := vocabulary.get(w)) is not None}
    new = sorted(wanted - ids.keys())
    if new:
        (last,) = c.execute("SELECT coalesce(max(id), 0) FROM words").fetchone()
        rows = [(last + 1 + i, w) for i, w in enumerate(new)]
        c.executemany("INSERT INTO words(id, word) VALUES (?,?)", rows)
        for word_id, word in rows:
            vocabulary.add(word, word_id)
            ids[word] = word_id
    postings = sorted((ids[w], file_id, key) for file_id, key, words in per_file for w in words)  # B-tree order
    vocabulary.add_postings([(word_id, file_id) for word_id, file_id, _ in postings])
    c.executemany("INSERT OR IGNORE INTO file_words_recent(word_id, file_id, sha_key) VALUES (?,?,?)", postings)


def merge_recent(c: sqlite3.Connection) -> bool:
    """Move one slice of recent postings (the lowest word ids) into file_words; True while more remain."""
    (first,) = c.execute("SELECT min(word_id) FROM file_words_recent").fetchone()
    if first is None:
        return False
    row = c.execute(
        "SELECT word_id FROM file_words_recent ORDER BY word_id LIMIT 1 OFFSET ?", (MERGE_POSTINGS_PER_SLICE,)
    ).fetchone()
    end = max(row[0], first + 1) if row else 1 << 62  # a word of more postings than a slice goes whole
    c.execute(
        "INSERT OR IGNORE INTO file_words(word_id, file_id, sha_key)"
        " SELECT word_id, file_id, sha_key FROM file_words_recent WHERE word_id < ? ORDER BY word_id, file_id",
        (end,),
    )
    c.execute("DELETE FROM file_words_recent WHERE word_id < ?", (end,))
    return row is not None


def tidy(c: sqlite3.Connection, vocabulary: Vocabulary, cursor: int, prune: bool) -> tuple[bool, int]:
    """One bounded slice of upkeep: index new files first, then merge recent postings into the
    large table, then (when prune) drop the stale postings of one range of words. Returns (more
    work remains, next cursor); the cursor is back at 0 when a pruning pass is complete.
    """
    if catch_up(c, vocabulary) or merge_recent(c):
        return True, cursor
    if not prune:
        return False, cursor
    end = cursor + PRUNE_WORDS_PER_SLICE
    in_range = "word_id >= ? AND word_id < ?"
    for table in POSTINGS_TABLES:
        c.execute(f"DELETE FROM {table} WHERE {in_range} AND file_id NOT IN (SELECT id FROM files)", (cursor, end))
    vocabulary.reload_postings(c, cursor, end)
    (top,) = c.execute("SELECT coalesce(max(id), 0) FROM words").fetchone()
    cursor += PRUNE_WORDS_PER_SLICE
    if cursor > top:
        return False, 0
    return True, cursor
