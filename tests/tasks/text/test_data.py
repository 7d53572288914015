"""Splits, folds and batches of the text task: stratified disjoint folds, the vocabulary from training only,
batches that cover every sentence once, and trimmed batches that give a Kim CNN its full-length logits."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.models import create
from cnnlab.tasks.text.data import TokenBatches, cv_folds, load_text_data
from cnnlab.tasks.text.task import TextOptions
from tests.tasks.text.corpus import write_class_files, write_lines


def _config(path, **fields) -> SimpleNamespace:
    return SimpleNamespace(**{"data": str(path), "test_data": None, "seed": 0, "val_split": 0.1, **fields})


def test_cv_folds_are_stratified_disjoint_and_cover_everything() -> None:
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    folds = cv_folds(labels, 10, seed=3)
    joined = np.concatenate(folds)
    assert sorted(joined.tolist()) == list(range(100))  # disjoint and complete
    for fold in folds:
        counts = np.bincount(labels[fold], minlength=3)
        assert counts.tolist() == [6, 3, 1]  # each fold keeps the 6:3:1 class mix
    assert [f.tolist() for f in cv_folds(labels, 10, seed=3)] == [f.tolist() for f in folds]  # seeded
    assert [f.tolist() for f in cv_folds(labels, 10, seed=4)] != [f.tolist() for f in folds]


def test_cv_refuses_more_folds_than_the_smallest_class() -> None:
    with pytest.raises(ConfigError, match="smallest class has only 3"):
        cv_folds(np.array([0] * 20 + [1] * 3), 5, seed=0)


def test_a_fold_tests_on_its_part_and_trains_and_validates_on_the_rest(tmp_path) -> None:
    folder = write_class_files(tmp_path / "data", 40)
    seen_test: list[str] = []
    for fold in (1, 2, 3, 4):
        data = load_text_data(_config(folder), TextOptions(folds=4, fold=fold))
        train, val, test = (set(s.origins) for s in (data.train, data.val, data.test))
        assert not (train & val) and not (train & test) and not (val & test)
        assert len(train) + len(val) + len(test) == 120
        assert len(test) == 30 and data.test.class_counts() == {"food": 10, "sport": 10, "tech": 10}
        seen_test += list(test)
    assert len(set(seen_test)) == 120  # every sentence is tested exactly once over the folds


def test_the_vocabulary_comes_from_the_training_split_only(tmp_path) -> None:
    path = write_lines(tmp_path / "train.txt", 60)
    (tmp_path / "test.txt").write_text("sport zebra goal\nfood quokka pasta\ntech yak laptop\n")
    data = load_text_data(_config(tmp_path), TextOptions())
    words = set(data.encoder.vocabulary.tokens)
    assert "goal" in words and not {"zebra", "quokka", "yak"} & words
    assert path.exists() and len(data.test) == 3
    assert (data.test.ids == 1).sum() == 3  # each unseen word is <unk>


def test_held_out_test_part_when_the_data_has_none(tmp_path) -> None:
    data = load_text_data(_config(write_lines(tmp_path / "all.txt", 300)), TextOptions(test_fraction=0.2))
    assert (len(data.train), len(data.val), len(data.test)) == (216, 24, 60)
    assert data.test.class_counts() == {"food": 20, "sport": 20, "tech": 20}
    assert data.encoder.max_length == max(len(t.split()) for t in data.train.texts)


def test_batches_cover_every_sentence_once_and_shards_split_each_batch(tmp_path) -> None:
    data = load_text_data(_config(write_lines(tmp_path / "all.txt", 200)), TextOptions())
    split = data.train
    batches = TokenBatches(split, 16, shuffle=True, generator=torch.Generator().manual_seed(0), trim=True, bucket=4)
    labels = torch.cat([y for _, y in batches])
    assert len(labels) == len(split) and len(list(batches)) == len(batches)
    assert sorted(labels.tolist()) == sorted(split.labels.tolist())
    whole = list(TokenBatches(split, 16, shuffle=True, generator=torch.Generator().manual_seed(1)))
    parts = [
        list(TokenBatches(split, 16, shuffle=True, generator=torch.Generator().manual_seed(1), shard=(rank, 2)))
        for rank in (0, 1)
    ]
    for full, first, second in zip(whole, *parts):
        assert torch.equal(torch.cat([first[0], second[0]]), full[0])


def test_trimmed_batches_give_a_kim_cnn_its_full_length_logits(tmp_path) -> None:
    data = load_text_data(_config(write_lines(tmp_path / "all.txt", 120)), TextOptions(max_length=30))
    torch.manual_seed(0)
    model = create("kim_cnn", num_classes=3, vocab_size=len(data.encoder.vocabulary), embedding_dim=16).eval()
    assert model.length_invariant
    with torch.no_grad():
        full = model(data.train.ids)
        trimmed = torch.cat([model(ids) for ids, _ in TokenBatches(data.train, 7, trim=True)])
        one = model(data.train.ids[:1, : int((data.train.ids[0] != 0).sum()) + 1])
    assert max(ids.shape[1] for ids, _ in TokenBatches(data.train, 7, trim=True)) < 30  # batches were cut
    torch.testing.assert_close(trimmed, full, rtol=0, atol=1e-5)
    torch.testing.assert_close(one, full[:1], rtol=0, atol=1e-5)
