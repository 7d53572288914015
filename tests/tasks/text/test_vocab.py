"""Vocabulary order, limits, encoding, coverage and its saved form."""

import json

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.tasks.text.vocab import Vocabulary

SENTENCES = [["b", "a", "c"], ["a", "d", "b"], ["a", "e"]]  # a:3, b:2, c d e:1 (first seen c, d, e)


def test_order_is_frequency_then_first_appearance():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b", "c", "d", "e"]
    assert len(vocab) == 7
    assert vocab.index("<pad>") == 0 and vocab.index("<unk>") == 1 and vocab.index("c") == 4


def test_min_freq_and_max_size():
    assert Vocabulary.build(SENTENCES, min_freq=2).tokens == ["<pad>", "<unk>", "a", "b"]
    assert Vocabulary.build(SENTENCES, max_size=4).tokens == ["<pad>", "<unk>", "a", "b"]
    assert Vocabulary.build(SENTENCES, max_size=5).tokens == ["<pad>", "<unk>", "a", "b", "c"]


def test_bad_limits_are_config_errors():
    with pytest.raises(ConfigError, match="min_freq"):
        Vocabulary.build(SENTENCES, min_freq=0)
    with pytest.raises(ConfigError, match="max_size"):
        Vocabulary.build(SENTENCES, max_size=1)


def test_encode_maps_unknown_words_to_one():
    vocab = Vocabulary.build(SENTENCES, min_freq=2)
    assert vocab.encode(["a", "c", "b", "zzz"]) == [2, 1, 3, 1]
    assert vocab.index("zzz") == 1


def test_encode_batch_pads_and_truncates():
    vocab = Vocabulary.build(SENTENCES)
    batch = vocab.encode_batch([["a"], ["b", "c", "d"], []], max_length=None)
    assert batch.dtype == torch.long
    assert batch.tolist() == [[2, 0, 0], [3, 4, 5], [0, 0, 0]]
    assert vocab.encode_batch([["a", "b", "c"], ["e"]], max_length=2).tolist() == [[2, 3], [6, 0]]


def test_coverage_counts_tokens_with_repeats():
    vocab = Vocabulary.build(SENTENCES, min_freq=2)
    assert vocab.coverage([["a", "a", "c"], ["zzz"]]) == pytest.approx(0.5)
    assert vocab.coverage([]) == 0.0


def test_meta_round_trip_through_json():
    vocab = Vocabulary.build(SENTENCES, min_freq=2)
    meta = json.loads(json.dumps(vocab.to_meta()))
    assert meta == {"tokens": ["<pad>", "<unk>", "a", "b"], "min_freq": 2}
    again = Vocabulary.from_meta(meta)
    assert again.tokens == vocab.tokens and again.encode(["b", "q"]) == [3, 1]
