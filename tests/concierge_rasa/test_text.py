"""The one text cleaner both runtimes share (concierge_rasa/text.py): channels, agent replies,
ticket fields and the sentiment model's input call it with their own length rule."""

from __future__ import annotations

import pytest

from concierge_rasa.text import CONTROL, INVISIBLE, clean_text


def test_anything_becomes_printable_trimmed_text() -> None:
    assert clean_text(None) == ""
    assert clean_text(b"hi\x00 there") == "hi there"
    assert clean_text(bytearray(b"\xff ok")) == "\ufffd ok"  # bad bytes stay visible as U+FFFD
    assert clean_text(memoryview(b"mv")) == "mv"
    assert clean_text(12345) == "12345" and clean_text(12.5) == "12.5"
    assert clean_text("  where\x07 is it?\r\n") == "where is it?"
    assert clean_text("line one\n\tline two") == "line one\n\tline two"  # newline and tab stay
    assert clean_text("😀 ¿dónde?") == "😀 ¿dónde?"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("\x7f", "DEL"),
        ("\x85", "C1 control"),
        ("\ud800", "lone surrogate"),
        ("\ue000", "private use"),
        ("\u0378", "unassigned"),
    ],
)
def test_controls_surrogates_private_and_unassigned_are_dropped(raw: str, kind: str) -> None:
    assert clean_text(f"a{raw}b") == "ab", kind
    clean_text(f"a{raw}b").encode("utf-8")  # what a database stores: a lone surrogate would raise here


def test_format_characters_stay_by_default_and_go_for_the_model() -> None:
    family = "👩\u200d👩\u200d👧"  # zero-width joiners make one emoji
    assert clean_text(family) == family
    assert clean_text("good\u200bday\x00now", 50, drop=INVISIBLE, fold_whitespace=True) == "good day now"
    assert CONTROL < INVISIBLE


def test_max_chars_cuts_and_ellipsis_marks_the_cut() -> None:
    assert clean_text("a" * 50_000, 4000) == "a" * 4000
    assert clean_text("abcdef", 6, ellipsis="…") == "abcdef"
    assert clean_text("abc defgh", 6, ellipsis="…") == "abc d…"
    assert clean_text("abcd efgh", 6, ellipsis="…") == "abcd…"  # no space before the ellipsis
    assert len(clean_text("x" * 10_000)) == 10_000  # no max: nothing cut (the caller refuses long text)


def test_only_twice_max_chars_is_read_and_a_cut_there_still_shows() -> None:
    junk_then_text = "\x00" * 30 + "hello"
    assert clean_text(junk_then_text, 10) == ""  # the first 20 characters are all that is read
    assert clean_text(junk_then_text) == "hello"
    assert clean_text("ab" + "\x00" * 30, 10, ellipsis="…") == "ab…"  # unread text missing is a cut too


def test_fold_whitespace_makes_one_line_of_single_spaces() -> None:
    assert clean_text("  so\n\n  slow\t\x07 today ", 100, fold_whitespace=True) == "so slow today"
    assert clean_text("ab " * 10, 5, fold_whitespace=True) == "ab ab"
