import numpy as np
import pytest
import torch

from quest_lab.corpus import DataConfig, data_identity, read_corpus_text
from quest_lab.tokens import eval_batches, load_tokens, train_batch


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QUEST_LAB_CACHE", str(tmp_path / "cache"))


def _text_file(tmp_path, n=20_000):
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler"]
    text = " ".join(rng.choice(words, n))
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    return path


def test_shakespeare_ships_with_the_package():
    text = read_corpus_text("shakespeare")
    assert len(text) > 4_000_000 and "MACBETH" in text


def test_byte_tokenizer_split_and_batches(tmp_path):
    stream = load_tokens(DataConfig(corpus=str(_text_file(tmp_path)), tokenizer="byte"))
    assert stream.vocab_size == 256
    assert len(stream.val) == pytest.approx(0.05 * (len(stream.train) + len(stream.val)), abs=1)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x1, y1 = train_batch(stream, 4, 32, g1)
    x2, y2 = train_batch(stream, 4, 32, g2)
    assert torch.equal(x1, x2) and x1.shape == (4, 32)
    assert torch.equal(x1[:, 1:], y1[:, :-1])  # targets are inputs shifted by one
    batches = list(eval_batches(stream, 256, 32, 3))
    assert sum(b[0].shape[0] for b in batches) == 8


def test_bpe_is_cached_and_deterministic(tmp_path):
    path = str(_text_file(tmp_path))
    a = load_tokens(DataConfig(corpus=path, tokenizer="bpe", vocab_size=300))
    b = load_tokens(DataConfig(corpus=path, tokenizer="bpe", vocab_size=300))
    assert torch.equal(a.train, b.train) and a.vocab_size == 300
    assert int(a.train.max()) < 300
    assert len(list((tmp_path / "cache").glob("tokens-*.npy"))) == 1


def test_pretokenized_npy_and_bin(tmp_path):
    ids = np.arange(5000) % 77
    np.save(tmp_path / "t.npy", ids)
    ids.astype(np.uint16).tofile(tmp_path / "t.bin")
    for name in ("t.npy", "t.bin"):
        stream = load_tokens(DataConfig(corpus=str(tmp_path / name), tokenizer="byte"))
        assert stream.vocab_size == 256 and int(stream.train[10]) == 10


def test_identity_changes_with_content_and_tokenizer(tmp_path):
    path = _text_file(tmp_path)
    a = data_identity(str(path), "bpe", 512)
    assert a != data_identity(str(path), "bpe", 1024) != data_identity(str(path), "byte", 512)
    other = tmp_path / "other.txt"
    other.write_text(path.read_text() + " more")
    assert data_identity(str(other), "bpe", 512).split(":")[0] != a.split(":")[0]


def test_bad_corpus():
    with pytest.raises(ValueError, match="neither a built-in corpus"):
        DataConfig(corpus="/no/such/file.txt")
