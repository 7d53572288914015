"""Kim's clean_str rule by rule, and the three tokenizers."""

import pytest

from cnnlab.errors import ConfigError
from cnnlab.tasks.text.tokenize import Tokenizer, clean_str


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It's a great movie, isn't it?", "it 's a great movie , is n't it ?"),
        ("We've seen they're good; you'd like it!", "we 've seen they 're good you 'd like it !"),
        ("We'll see, OK", "we 'll see , ok"),
        ("A (very) long--film...", "a ( very ) long film"),
        ("  spaces\tand\nnewlines  ", "spaces and newlines"),
        ("Café naïve", "caf na ve"),  # non-ASCII letters are not in Kim's class [A-Za-z0-9(),!?'`]
        ("``quoted'' 42", "``quoted'' 42"),
        ("don't", "do n't"),
    ],
)
def test_clean_str_follows_kims_rules(text, expected):
    assert clean_str(text) == expected


def test_clean_str_keeps_case_for_trec():
    assert clean_str("How did serfdom develop in Russia ?", lower=False) == "How did serfdom develop in Russia ?"
    assert clean_str("What's NASA?", lower=False) == "What 's NASA ?"


def test_kim_tokenizer_splits_clean_str():
    assert Tokenizer()("It's fine, really!") == ["it", "'s", "fine", ",", "really", "!"]
    assert Tokenizer(lower=False)("It's NASA") == ["It", "'s", "NASA"]


def test_whitespace_tokenizer():
    assert Tokenizer("whitespace")("A  b\tC,d") == ["a", "b", "c,d"]
    assert Tokenizer("whitespace", lower=False)("A b") == ["A", "b"]


def test_chars_tokenizer_keeps_spaces():
    assert Tokenizer("chars")("Hi, Bo") == ["h", "i", ",", " ", "b", "o"]


def test_meta_round_trip():
    tokenizer = Tokenizer("chars", lower=False)
    assert tokenizer.to_meta() == {"rules": "chars", "lower": False}
    assert Tokenizer.from_meta(tokenizer.to_meta()) == tokenizer


def test_unknown_rules_are_a_config_error():
    with pytest.raises(ConfigError, match="unknown 'spacy'; expected one of kim, whitespace, chars"):
        Tokenizer("spacy")
