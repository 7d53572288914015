"""Every layout read_text_data recognises, on small generated files; its one-line errors; the shared MR, TREC, Subj."""

from pathlib import Path

import pytest

from cnnlab.errors import ConfigError, DataError
from cnnlab.tasks.text.readers import read_text_data

SHARED_TEXT = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "text"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def test_lines_file(tmp_path):
    path = write(tmp_path / "q.txt", "DESC:manner How did it go ?\nHUM:ind Who won ?\r\nDESC:def What is X ?\n")
    corpus = read_text_data(path)
    assert corpus.format == "lines" and corpus.source == str(path)
    split = corpus.splits["all"]
    assert split.texts == ["How did it go ?", "Who won ?", "What is X ?"]
    assert split.labels == ["DESC:manner", "HUM:ind", "DESC:def"]
    assert split.origins == ["q.txt:1", "q.txt:2", "q.txt:3"]
    assert corpus.classes == ["DESC:def", "DESC:manner", "HUM:ind"]


def test_coarse_labels_keep_the_part_before_the_colon(tmp_path):
    path = write(tmp_path / "q.txt", "DESC:manner How ?\nHUM:ind Who ?\nDESC:def What ?")
    corpus = read_text_data(path, coarse_labels=True)
    assert corpus.splits["all"].labels == ["DESC", "HUM", "DESC"]
    assert corpus.classes == ["DESC", "HUM"]


def test_lines_are_split_on_newline_only(tmp_path):
    write(tmp_path / "mr" / "rt.pos", b"one \x85 two\nthree\n")
    write(tmp_path / "mr" / "rt.neg", b"four\n")
    split = read_text_data(tmp_path / "mr", encoding="latin-1").splits["all"]
    assert split.texts == ["four", "one \x85 two", "three"]


def test_class_files_sharing_a_stem_take_the_extension(tmp_path):
    write(tmp_path / "rt-polarity.pos", "good film\ngreat\n")
    write(tmp_path / "rt-polarity.neg", "bad film\n")
    write(tmp_path / "README", "notes, not data\n")
    corpus = read_text_data(tmp_path)
    assert corpus.format == "class-files" and corpus.classes == ["neg", "pos"]
    split = corpus.splits["all"]
    assert split.texts == ["bad film", "good film", "great"]
    assert split.labels == ["neg", "pos", "pos"]
    assert split.origins == ["rt-polarity.neg:1", "rt-polarity.pos:1", "rt-polarity.pos:2"]


def test_class_files_with_distinct_stems_take_the_stem(tmp_path):
    write(tmp_path / "positive.txt", "yes\n")
    write(tmp_path / "negative.txt", "no\nnever\n")
    corpus = read_text_data(tmp_path)
    assert corpus.classes == ["negative", "positive"]
    assert corpus.splits["all"].labels == ["negative", "negative", "positive"]


def test_csv_with_default_columns(tmp_path):
    path = write(tmp_path / "reviews.csv", 'id,Review,sentiment\n1,"good, really",pos\n2,"bad\nfilm",neg\n')
    corpus = read_text_data(path)
    assert corpus.format == "csv" and corpus.classes == ["neg", "pos"]
    split = corpus.splits["all"]
    assert split.texts == ["good, really", "bad\nfilm"]
    assert split.labels == ["pos", "neg"]
    assert split.origins == ["reviews.csv:2", "reviews.csv:4"]


def test_tsv_and_column_options(tmp_path):
    path = write(tmp_path / "d.tsv", "body\ttopic\tlabel\nhello there\tgreet\tx\nbye\tpart\ty\n")
    split = read_text_data(path, text_column="body", label_column="topic").splits["all"]
    assert split.texts == ["hello there", "bye"] and split.labels == ["greet", "part"]


def test_csv_delimiter_is_sniffed(tmp_path):
    path = write(tmp_path / "d.csv", "text;label\nhello, you;a\nbye;b\n")
    assert read_text_data(path).splits["all"].texts == ["hello, you", "bye"]


def test_class_folders(tmp_path):
    write(tmp_path / "pos" / "0_9.txt", "Loved it.\nTruly.")
    write(tmp_path / "pos" / "1_8.txt", "Fine")
    write(tmp_path / "neg" / "2_1.txt", "Awful")
    corpus = read_text_data(tmp_path)
    assert corpus.format == "class-folders" and corpus.classes == ["neg", "pos"]
    split = corpus.splits["all"]
    assert split.texts == ["Awful", "Loved it. Truly.", "Fine"]
    assert split.origins == ["neg/2_1.txt:1", "pos/0_9.txt:1", "pos/1_8.txt:1"]


def test_split_files_by_extension(tmp_path):
    write(tmp_path / "TREC.train", "NUM:date When ?\nHUM:ind Who ?\n")
    write(tmp_path / "TREC.test", "LOC:city Where ?\n")
    corpus = read_text_data(tmp_path, coarse_labels=True)
    assert corpus.format == "split-files/lines"
    assert list(corpus.splits) == ["train", "test"]
    assert corpus.splits["train"].labels == ["NUM", "HUM"] and corpus.splits["test"].texts == ["Where ?"]
    assert corpus.splits["test"].origins == ["TREC.test:1"]
    assert corpus.classes == ["HUM", "LOC", "NUM"]


def test_split_files_by_stem(tmp_path):
    write(tmp_path / "train.csv", "text,label\na,x\nb,y\n")
    write(tmp_path / "dev.csv", "text,label\nc,x\n")
    write(tmp_path / "test.csv", "text,label\nd,y\n")
    corpus = read_text_data(tmp_path)
    assert corpus.format == "split-files/csv"
    assert list(corpus.splits) == ["train", "val", "test"]
    assert [corpus.splits[name].texts for name in corpus.splits] == [["a", "b"], ["c"], ["d"]]


def test_split_folders_of_class_folders(tmp_path):
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            write(tmp_path / split / label / f"{split}_{label}.txt", f"{split} {label} review")
    write(tmp_path / "train" / "unsup" / "0_0.txt", "unlabelled")
    write(tmp_path / "train" / "labeledBow.feat", "0 0:1\n")
    write(tmp_path / "imdb.vocab", "the\n")
    corpus = read_text_data(tmp_path)
    assert corpus.format == "split-folders/class-folders"
    assert list(corpus.splits) == ["train", "test"] and corpus.classes == ["neg", "pos"]
    assert corpus.splits["train"].texts == ["train neg review", "train pos review"]
    assert corpus.splits["test"].origins == ["test/neg/test_neg.txt:1", "test/pos/test_pos.txt:1"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.txt": ""}, r"a.txt: empty file"),
        ({"a.txt": "x one\n\ny two\n"}, r"a.txt line 2: empty line"),
        ({"a.txt": "x one\nlonely\n"}, r"a.txt line 2: 'lonely' has no sentence after it; expected `label sentence`"),
        (
            {"a.txt": b"x one\ny caf\xe9\n"},
            r"a.txt line 2: not UTF-8 text \(byte 0xe9\); pass --encoding latin-1 or the file's encoding",
        ),
        ({"d.csv": "text,label\nhi\n"}, r"d.csv line 2: 1 fields, the header has 2"),
        ({"d.csv": "text,label\n"}, r"d.csv: a header but no rows"),
        ({"d.csv": "words,label\nhi,x\n"}, r"d.csv: no text column \(looked for text, sentence.*columns: words, label"),
        ({"d.csv": "text,label\n,x\n"}, r"d.csv line 2: empty 'text'"),
    ],
)
def test_bad_files(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(DataError, match=message) as error:
        read_text_data(tmp_path / next(iter(files)))
    assert "\n" not in str(error.value)


def test_unknown_column_lists_the_columns(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\nhi,x\n")
    with pytest.raises(DataError, match=r"d.csv: no column 'body' for the text; its columns: text, label"):
        read_text_data(path, text_column="body")


def test_bad_folders(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        read_text_data(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty" / ".hidden", "x y\n")
    with pytest.raises(DataError, match="empty: no text files or class folders"):
        read_text_data(tmp_path / "empty")
    write(tmp_path / "classes" / "pos" / "a.txt", "good")
    (tmp_path / "classes" / "neg").mkdir()
    with pytest.raises(DataError, match="neg: class 'neg' has no .txt files"):
        read_text_data(tmp_path / "classes")
    write(tmp_path / "splits" / "train.txt", "x a\n")
    write(tmp_path / "splits" / "extra.txt", "x b\n")
    with pytest.raises(DataError, match="extra.txt: not named for a split"):
        read_text_data(tmp_path / "splits")


def test_option_errors(tmp_path):
    path = write(tmp_path / "a.txt", "x one\n")
    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        read_text_data(path, encoding="klingon")
    with pytest.raises(ConfigError, match="apply to .csv/.tsv files"):
        read_text_data(path, text_column="text")


@pytest.mark.skipif(not SHARED_TEXT.is_dir(), reason="MR, TREC and Subj are not in ../shared/data/text")
def test_shared_mr_trec_subj():
    mr = read_text_data(SHARED_TEXT / "mr", encoding="latin-1")
    assert mr.format == "class-files" and mr.classes == ["neg", "pos"]
    assert [mr.splits["all"].labels.count(label) for label in ("neg", "pos")] == [5331, 5331]
    # TREC is ASCII but for one byte (0xf0, TREC.train line 66), so it is read as latin-1 too.
    trec = read_text_data(SHARED_TEXT / "trec", encoding="latin-1", coarse_labels=True)
    assert trec.format == "split-files/lines" and list(trec.splits) == ["train", "test"]
    assert (len(trec.splits["train"]), len(trec.splits["test"])) == (5452, 500)
    assert trec.classes == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert trec.splits["train"].texts[0] == "How did serfdom develop in and then leave Russia ?"
    subj = read_text_data(SHARED_TEXT / "subj", encoding="latin-1")
    assert subj.classes == ["objective", "subjective"] and len(subj.splits["all"]) == 10000
    assert subj.splits["all"].labels.count("objective") == 5000
