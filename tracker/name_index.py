"""The name index: the words of every file name, and a trigram map over the vocabulary.

A substring query must find "aibu du" inside "music/gaibu duga.mp3". Every maximal run of
letters and digits in the query lies inside one such run (a word) of any name that contains
it, so any run of the query narrows the search to the files holding a word that contains it;
the store starts from the run whose words hold the fewest postings. Postings (word -> files)
live in SQLite; the vocabulary (tens of thousands of words, not a million names) lives in
memory with posting counts and a trigram map that finds the words containing a string in
microseconds (an FTS5 trigram table over the vocabulary cost ~0.1 ms a query; one over every
full name ~10 ms, as common trigrams have huge posting lists); strings of one or two characters
have their word lists ready. GLOB on the full name then checks each candidate exactly.

The index is written behind: SendIndex stores files only, and the tracker's background upkeep
indexes them in slices soon after (a 100,000-file publish costs the request ~3 s instead of ~7).
Files above the indexed watermark are candidates for every query until then, so results are
never missing anything, only slower for a few seconds. Postings of deleted files are pruned in
the background too: a stale posting costs a lookup, as every candidate is checked against the
live files table.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits, in any script
_GLOB_SYNTAX = re.compile(r"\*|\?|\[[^\]]*\]?")
PRUNE_WORDS_PER_SLICE = 200
INTERSECT_RUNS = 3  # at most this many runs' postings are intersected
INDEX_FILES_PER_SLICE = 5000  # ~0.2 s of work: writers (heartbeats, logins) never wait long


def words_of(name_lower: str) -> set[str]:
    return set(_WORD.findall(name_lower))


def word_runs(pattern_lower: str, glob: bool) -> list[str]:
    """The runs of letters and digits that every matching name must contain, each within a word."""
    literals = _GLOB_SYNTAX.split(pattern_lower) if glob else [pattern_lower]
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
    """Every word of the index with its id, and which words contain a given trigram.

    Loaded from the words table at start; add() is called inside the transaction that inserts a
    word, before it commits, so a query never sees a posting whose word it cannot find (a word
    left behind by a rolled-back transaction only costs a few candidates that GLOB rejects).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._by_trigram: dict[str, set[str]] = {}
        # runs too short for trigrams: the ids of the words holding each 1- and 2-character
        # string, as compact arrays (a scan of 400,000 words took ~100 ms under the lock)
        self._by_short: dict[str, array[int]] = {}
        self._postings: Counter[int] = Counter()  # word id -> postings (stale ones too, until pruned)

    def load(self, c: sqlite3.Connection) -> None:
        for word_id, word in c.execute("SELECT id, word FROM words"):
            self.add(word, word_id)
        with self._lock:
            self._postings.update(dict(c.execute("SELECT word_id, count(*) FROM file_words GROUP BY word_id")))

    def add_postings(self, counts: Counter[int]) -> None:
        with self._lock:
            self._postings.update(counts)

    def recount(self, first_id: int, end_id: int, counts: dict[int, int]) -> None:
        """Exact posting counts for word ids in [first_id, end_id), after a prune."""
        with self._lock:
            for word_id in range(first_id, end_id):
                if counts.get(word_id):
                    self._postings[word_id] = counts[word_id]
                else:
                    self._postings.pop(word_id, None)

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
                total += self._postings[word_id]
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


def runs_to_intersect(vocabulary: Vocabulary, pattern_lower: str, glob: bool, broad: int) -> list[Candidates]:
    """The runs whose postings to intersect for a pattern: the rarest, and up to two more that are
    not much more common; none when even the rarest holds over `broad` postings (or the pattern
    has no word), as walking contents in sha256 order to a full page is cheaper then."""
    ranked = rarest(vocabulary, word_runs(pattern_lower, glob), broad)
    if not ranked or ranked[0].postings > broad:
        return []
    bound = min(broad, 10 * ranked[0].postings + 100)
    return [r for r in ranked[:INTERSECT_RUNS] if r.postings <= bound]


def candidates_sql(runs: list[Candidates]) -> tuple[str, list[object]]:
    """A condition on files f that keeps (at least) every file holding a word of each run.

    Intersecting the postings of two rare runs (a title's two words) reads a few short posting
    lists in order instead of fetching every file row one run's words point to.
    """
    postings = "SELECT file_id FROM file_words WHERE word_id IN (SELECT value FROM json_each(?))"
    not_yet_indexed = "SELECT id FROM files WHERE id > (SELECT upto FROM index_progress WHERE name = 'files')"
    indexed = " INTERSECT ".join([postings] * len(runs))
    return f"f.id IN ({indexed} UNION ALL {not_yet_indexed})", [json.dumps(r.word_ids) for r in runs]


def watermark(c: sqlite3.Connection) -> int:
    """Files with ids up to this are in the index; new files must get larger ids."""
    row = c.execute("SELECT upto FROM index_progress WHERE name = 'files'").fetchone()
    return int(row[0]) if row else 0


def catch_up(c: sqlite3.Connection, vocabulary: Vocabulary) -> bool:
    """Index one slice of files above the watermark; True while more are waiting."""
    rows = c.execute(
        "SELECT id, name_lower FROM files WHERE id > ? ORDER BY id LIMIT ?", (watermark(c), INDEX_FILES_PER_SLICE)
    ).fetchall()
    if not rows:
        return False
    add(c, vocabulary, rows)
    c.execute("UPDATE index_progress SET upto = ? WHERE name = 'files'", (rows[-1][0],))
    return len(rows) == INDEX_FILES_PER_SLICE


def add(c: sqlite3.Connection, vocabulary: Vocabulary, files: Iterable[tuple[int, str]]) -> None:
    """Index (file id, lowercase name) pairs; new words join the vocabulary."""
    per_file = [(file_id, words_of(name)) for file_id, name in files]
    wanted = set().union(*(w for _, w in per_file)) if per_file else set()
    ids = {w: i for w in wanted if (i := vocabulary.get(w)) is not None}
    new = sorted(wanted - ids.keys())
    if new:
        (last,) = c.execute("SELECT coalesce(max(id), 0) FROM words").fetchone()
        rows = [(last + 1 + i, w) for i, w in enumerate(new)]
        c.executemany("INSERT INTO words(id, word) VALUES (?,?)", rows)
        for word_id, word in rows:
            vocabulary.add(word, word_id)
            ids[word] = word_id
    postings = sorted((ids[w], file_id) for file_id, words in per_file for w in words)  # B-tree order: fewer pages
    vocabulary.add_postings(Counter(word_id for word_id, _ in postings))
    c.executemany("INSERT OR IGNORE INTO file_words(word_id, file_id) VALUES (?,?)", postings)


def tidy(c: sqlite3.Connection, vocabulary: Vocabulary, cursor: int, prune: bool) -> tuple[bool, int]:
    """One bounded slice of upkeep: index new files first, then (when prune) drop the stale
    postings of one range of words. Returns (more work remains, next cursor); the cursor is back
    at 0 when a pruning pass over the vocabulary is complete.
    """
    if catch_up(c, vocabulary):
        return True, cursor
    if not prune:
        return False, cursor
    end = cursor + PRUNE_WORDS_PER_SLICE
    in_range = "word_id >= ? AND word_id < ?"
    c.execute(f"DELETE FROM file_words WHERE {in_range} AND file_id NOT IN (SELECT id FROM files)", (cursor, end))
    counts = c.execute(f"SELECT word_id, count(*) FROM file_words WHERE {in_range} GROUP BY word_id", (cursor, end))
    vocabulary.recount(cursor, end, dict(counts))
    (top,) = c.execute("SELECT coalesce(max(id), 0) FROM words").fetchone()
    cursor += PRUNE_WORDS_PER_SLICE
    if cursor > top:
        return False, 0
    return True, cursor
