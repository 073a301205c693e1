"""Variable expansion with every modifier of the Dockerfile reference."""

from __future__ import annotations

import pytest

from hafen.build.dockerfile import ExpansionError, process_word, process_words

ENV = {"V": "foobarbaz", "E": "", "H": "/root", "P": "a*b"}


@pytest.mark.parametrize(
    ("word", "want"),
    [
        ("$V", "foobarbaz"),
        ("${V}", "foobarbaz"),
        ("${V}_x", "foobarbaz_x"),
        ("$V_x", ""),  # the name is V_x, unset
        ("${E:-w}", "w"),
        ("${U:-w}", "w"),
        ("${E-w}", ""),
        ("${U-w}", "w"),
        ("${V:+x}", "x"),
        ("${E:+x}", ""),
        ("${E+x}", "x"),
        ("${U+x}", ""),
        ("${V#f*b}", "arbaz"),
        ("${V##f*b}", "az"),
        ("${V%b*}", "foobar"),
        ("${V%%b*}", "foo"),
        ("${V#x}", "foobarbaz"),
        ("${V/ba/fo}", "fooforbaz"),
        ("${V//ba/fo}", "fooforfoz"),
        ("${V/ba}", "foorbaz"),
        ("${P#a\\*}", "b"),
        ("\\$V", "$V"),
        ("\\${V}", "${V}"),
        ('"$H/x y"', "/root/x y"),
        ("'$H'", "$H"),
        ("a\\ b", "a b"),
        ('"a\\"b"', 'a"b'),
        ('"a\\b"', "a\\b"),
        ("${U:-$H/d}", "/root/d"),
        ("${U:-'lit $H'}", "lit $H"),
        ("$", "$"),
        ("a$", "a$"),
        ("$1", ""),
    ],
)
def test_expansion(word: str, want: str) -> None:
    assert process_word(word, ENV) == want


def test_backtick_escape() -> None:
    assert process_word("`$V", ENV, escape="`") == "$V"
    assert process_word("c:\\dir", ENV, escape="`") == "c:\\dir"


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${U:?must be set}", "U: must be set"),
        ("${U?}", "U: is not allowed to be unset"),
        ("${E:?}", "E: is not allowed to be empty"),
        ("${V", "missing '}'"),
        ("${}", "bad substitution"),
        ("${V:=x}", "unsupported modifier"),
        ("'abc", "single-quote"),
        ('"abc', "double-quote"),
    ],
)
def test_expansion_errors(word: str, message: str) -> None:
    with pytest.raises(ExpansionError, match=message):
        process_word(word, ENV)


def test_words_split_unquoted_expansions_only() -> None:
    assert process_words('a $X "b $X"', {"X": "1 2"}) == ["a", "1", "2", "b 1 2"]
