"""The name index on a real SQLite database: words, postings, the vocabulary kept in memory."""

from __future__ import annotations

import sqlite3
from importlib import resources

from tracker import name_index
from tracker.name_index import Vocabulary, fold, rarest, word_runs, words_of


def test_word_runs_are_every_run_a_match_must_contain():
    assert words_of("music/gaibu duga.mp3") == {"music", "gaibu", "duga", "mp3"}
    assert word_runs("aibu du", glob=False) == ["aibu", "du"]
    assert word_runs("*/duga*.[mM]p3", glob=True) == ["duga", "p3"]
    assert word_runs("*.*", glob=True) == [] and word_runs("-", glob=False) == []
    assert word_runs("日本語 テスト", glob=False) == ["日本語", "テスト"]


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


def test_names_fold_as_people_type_them():
    """Case in every script, one normal form, plain compatibility forms, no Latin, Greek or
    Cyrillic accents; marks that make another letter (kana voicing) stay."""
    same = [
        ("Café.TXT", "cafe.txt"),
        ("Cafe\u0301", "cafe"),  # decomposed, as macOS writes names
        ("Straße", "strasse"),
        (f"{fullwidth('FULL')} {fullwidth('width')}", "full width"),
        ("\ufb01le", "file"),  # the fi ligature
        ("ÀÉÎÕÜ Ångström", "aeiou angstrom"),
        ("İstanbul", "istanbul"),
        ("Ελληνικά", "ελληνικα"),
        ("Ёлка", "елка"),
    ]
    assert [fold(text) for text, _ in same] == [folded for _, folded in same]
    assert fold("かがみ") == "かがみ" != fold("かかみ")  # voicing makes another kana
    assert fold("한국어 파일") == "한국어 파일"
    assert fold("日本語") == "日本語"
    assert fold("x*y?[z]") == "x*y?[z]"


def _database() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.executescript(resources.files("tracker").joinpath("schema.sql").read_text())
    c.execute("INSERT INTO accounts(name, password_hash, created_at) VALUES ('a', 'x', 0)")
    c.execute("INSERT INTO sessions VALUES (1, 'a', 't', '127.0.0.1:1', 1e12, 0)")
    return c


def _add_file(c: sqlite3.Connection, file_id: int, name: str) -> None:
    c.execute("INSERT INTO files VALUES (?, 1, ?, ?, 1, ?, 65536, ?, 0)", (file_id, name, fold(name), "0" * 64, "0" * 64))


def test_vocabulary_counts_postings_and_forgets_pruned_ones():
    c = _database()
    vocabulary = Vocabulary()
    for i, name in enumerate(["music/gaibu duga.mp3", "music/duga duga.flac", "docs/readme.txt"], start=1):
        _add_file(c, i, name)
    while name_index.tidy(c, vocabulary, 0, prune=False)[0]:
        pass
    assert sorted(vocabulary.candidates("duga", 100).word_ids) == [vocabulary.get("duga")]
    assert vocabulary.candidates("duga", 100).postings == 2  # a word counts once per name
    assert vocabulary.candidates("usi", 100).postings == 2  # "music", through the trigram map
    assert vocabulary.candidates("u", 100).postings == 5  # too short for trigrams: music x2, gaibu, duga x2
    assert vocabulary.candidates("u", 1).postings == 2  # counting stops just above the cap
    assert vocabulary.candidates("zzz", 100).postings == 0
    ranked = [(c.run, c.postings) for c in rarest(vocabulary, ["music", "readme", "duga", "music"], 100)]
    assert ranked[0] == ("readme", 1) and sorted(ranked[1:]) == [("duga", 2), ("music", 2)]
    assert [c.run for c in rarest(vocabulary, ["du", "readme"], 100)] == ["readme"]  # short runs only without long ones
    assert [c.run for c in rarest(vocabulary, ["du", "u"], 100)] == ["du", "u"]
    assert rarest(vocabulary, [], 100) == []

    c.execute("DELETE FROM files WHERE id = 2")
    cursor = 0
    while True:
        more, cursor = name_index.tidy(c, vocabulary, cursor, prune=True)
        if not more:
            break
    assert vocabulary.candidates("duga", 100).postings == 1
    assert c.execute("SELECT count(*) FROM file_words WHERE file_id = 2").fetchone()[0] == 0

    reloaded = Vocabulary()
    reloaded.load(c)
    assert reloaded.candidates("duga", 100).postings == 1 and reloaded.candidates("mp3", 100).postings == 1


def test_short_runs_find_exactly_the_words_that_contain_them():
    words = ["gaibu", "duga", "mp3", "readme", "日本語", "a", "ba", "aa"]
    vocabulary = Vocabulary()
    for word_id, word in enumerate(words, start=1):
        vocabulary.add(word, word_id)
    vocabulary.add("duga", 2)  # a word already known is not listed twice
    for text in ["a", "u", "ba", "du", "3", "本", "日本", "aa", "q", "zz"]:
        expected = sorted(i for i, w in enumerate(words, start=1) if text in w)
        assert sorted(vocabulary.containing(text)) == expected, text
