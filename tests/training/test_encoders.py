from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from emopulse.training.encoders.ngrams import NgramBagEncoder
from emopulse.training.encoders.text import TextEncoder, embed_texts, mean_pool
from emopulse.training.encoders.tokenizers import (
    HashedNgramTokenizer, TextTokenizer, bundle_tokenizer, load_tokenizer, save_tokenizer,
)

# 1 + zlib.crc32(gram.encode("utf-8")) % 65536, written out once: a change of hashing breaks every
# saved model, so it must break this test too.
EXPECTED_AB = [48708, 18542, 61434]          # "a", "ab", "b"
EXPECTED_HAHA = [6547, 10247, 6547]          # "哈", "哈哈", "哈"


def test_hashed_ngram_ids_are_fixed_crc32_values() -> None:
    tok = HashedNgramTokenizer(buckets=1 << 16)
    assert tok.ngrams(" ＡB\n") == ["a", "ab", "b"]  # NFKC (full-width Ａ), lower-case, trimmed
    assert tok.ids("AB") == EXPECTED_AB
    assert tok.ids("哈哈") == EXPECTED_HAHA


def test_hashed_ngram_ids_are_the_same_in_another_process_with_another_hash_seed() -> None:
    code = "from emopulse.training.encoders.tokenizers import HashedNgramTokenizer as T; print(T().ids('哈哈ab'))"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert outs == {str(HashedNgramTokenizer().ids("哈哈ab")) + "\n"}


def test_hashed_ngram_encode_pads_masks_and_truncates() -> None:
    tok = HashedNgramTokenizer(buckets=1 << 16, max_len=4)
    ids, mask = tok.encode(["ab", "", "abcdef", None])  # type: ignore[list-item]
    assert ids.dtype == mask.dtype == np.int64 and ids.shape == mask.shape == (4, 4)
    assert ids[0].tolist() == [*EXPECTED_AB, 0] and mask[0].tolist() == [1, 1, 1, 0]
    assert mask[1].sum() == mask[3].sum() == 0 and mask[2].sum() == 4


def test_word_and_in_word_character_ngrams_are_options_that_leave_the_default_alone(tmp_path) -> None:
    tok = HashedNgramTokenizer(min_n=2, max_n=3, char_wb=1, word_max_n=2)
    assert tok.ngrams("Big  cat!") == [" b", " bi", "bi", "big", "ig", "ig ", "g ",  # each word padded
                                       " c", " ca", "ca", "cat", "at", "at!", "t!", "t! ", "! ",
                                       "\x01big", "\x01big cat", "\x01cat"]  # then words, kept apart
    assert HashedNgramTokenizer().ngrams("Ab c") == ["a", "ab", "ab ", "b", "b ", "b c", " ", " c", "c"]
    wide = HashedNgramTokenizer(buckets=1000, min_n=2, max_n=5, char_wb=1, word_max_n=2, max_len=50)
    assert load_tokenizer(save_tokenizer(wide, tmp_path / "w.json")) == wide


def test_tokenizers_round_trip_through_their_file(tmp_path, tiny_encoder) -> None:
    hashed = HashedNgramTokenizer(buckets=1000, max_len=9)
    assert load_tokenizer(save_tokenizer(hashed, tmp_path / "h.json")) == hashed
    text = TextTokenizer(str(tiny_encoder), max_len=12, prefix="query: ")
    assert load_tokenizer(save_tokenizer(text, tmp_path / "t.json")) == text
    # bundled: the tokenizer's own files travel with the model folder, the path is relative to it
    bundled = bundle_tokenizer(text, tmp_path)
    assert bundled.path == "tokenizer_files" and (tmp_path / "tokenizer_files" / "tokenizer.json").is_file()
    loaded = load_tokenizer(save_tokenizer(bundled, tmp_path / "tokenizer.json"))
    assert [a.tolist() for a in loaded.encode(["哈哈哈"])] == [a.tolist() for a in text.encode(["哈哈哈"])]


def test_text_tokenizer_prefixes_truncates_to_max_len_and_pads_to_the_longest(tiny_encoder) -> None:
    tok = TextTokenizer(str(tiny_encoder), max_len=96, prefix="")
    ids, mask = tok.encode(["哈" * 200, "哈哈", ""])
    assert ids.shape == (3, 96) and mask[0].sum() == 96 and mask[1].sum() == 4  # [CLS] 哈 哈 [SEP]
    short, _ = tok.encode(["哈哈"])
    assert short.shape == (1, 4)
    padded, padded_mask = tok.encode(["哈哈"], pad_to_max=True)
    assert padded.shape == (1, 96) and padded_mask.sum() == 4
    with_prefix, _ = TextTokenizer(str(tiny_encoder), prefix="query: ").encode(["哈哈"])
    assert with_prefix.shape[1] == 4 + len("query: ")


def test_text_encoder_mean_pools_over_the_mask_so_padding_changes_nothing(tiny_encoder) -> None:
    tok = TextTokenizer(str(tiny_encoder), max_len=96)
    encoder = TextEncoder.from_pretrained(tiny_encoder).eval()
    assert encoder.dim == 32
    texts = ["狗头保命", "哈哈哈，好漂亮啊"]
    with torch.no_grad():
        short = encoder(*map(torch.from_numpy, tok.encode(texts)))
        long = encoder(*map(torch.from_numpy, tok.encode(texts, pad_to_max=True)))
        hidden = encoder.backbone(*map(torch.from_numpy, tok.encode(texts[:1]))).last_hidden_state
    torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short[0], hidden[0].mean(dim=0), atol=1e-5, rtol=1e-5)
    assert mean_pool(torch.ones(1, 3, 2), torch.zeros(1, 3)).abs().sum() == 0  # all masked: zeros


def test_embed_texts_caches_by_encoder_and_text(tmp_path, tiny_encoder, monkeypatch) -> None:
    tok = TextTokenizer(str(tiny_encoder), max_len=96)
    encoder = TextEncoder.from_pretrained(tiny_encoder)
    first = embed_texts(encoder, tok, ["哈哈哈", "狗头保命", "哈哈哈"], cache_dir=tmp_path, batch_size=2)
    assert first.shape == (3, 32) and np.allclose(first[0], first[2])
    assert len(list(tmp_path.glob("text-*/part-*.npz"))) == 1
    calls = []
    monkeypatch.setattr(encoder, "forward", lambda *a: calls.append(a) or torch.zeros(1, 32))
    again = embed_texts(encoder, tok, ["狗头保命", "哈哈哈"], cache_dir=tmp_path)
    assert calls == [] and np.allclose(again, first[[1, 0]])
    other = embed_texts(encoder, TextTokenizer(str(tiny_encoder), max_len=96, prefix="query: "), ["哈哈哈"],
                        cache_dir=tmp_path)  # another prefix is another cache
    assert len(calls) == 1 and len(list(tmp_path.glob("text-*"))) == 2 and other.shape == (1, 32)


def test_ngram_bag_encoder_ignores_padding() -> None:
    tok = HashedNgramTokenizer(buckets=1 << 10)
    encoder = NgramBagEncoder(tok.vocab_size, dim=8)
    ids, mask = tok.encode(["哈哈", "哈哈哈哈哈哈"])
    one, _ = tok.encode(["哈哈"])
    with torch.no_grad():
        batch = encoder(torch.from_numpy(ids), torch.from_numpy(mask))
        alone = encoder(torch.from_numpy(one), torch.ones_like(torch.from_numpy(one)))
    torch.testing.assert_close(batch[0], alone[0])
