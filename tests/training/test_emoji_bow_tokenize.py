from __future__ import annotations

import subprocess
import sys

import numpy as np

from emopulse.training.emoji_bow.tokenize import HashedNgramTokenizer

# 1 + zlib.crc32(gram.encode("utf-8")) % 65536, written out once: a change of hashing breaks every
# saved model, so it must break this test too.
EXPECTED_AB = [48708, 18542, 61434]          # "a", "ab", "b"
EXPECTED_HAHA = [6547, 10247, 6547]          # "哈", "哈哈", "哈"


def test_ids_are_fixed_crc32_values() -> None:
    tok = HashedNgramTokenizer(buckets=1 << 16)
    assert tok.ngrams(" ＡB\n") == ["a", "ab", "b"]  # NFKC (full-width Ａ), lower-case, trimmed
    assert tok.normalize("a\u3000 \tb") == "a b"   # runs of white space become one space
    assert tok.ids("AB") == EXPECTED_AB
    assert tok.ids("哈哈") == EXPECTED_HAHA


def test_ids_are_the_same_in_another_process_with_another_hash_seed() -> None:
    code = "from emopulse.training.emoji_bow.tokenize import HashedNgramTokenizer as T; print(T().ids('哈哈ab'))"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert outs == {str(HashedNgramTokenizer().ids("哈哈ab")) + "\n"}


def test_encode_pads_masks_and_truncates() -> None:
    tok = HashedNgramTokenizer(buckets=1 << 16, max_len=4)
    ids, mask = tok.encode(["ab", "", "abcdef"])
    assert ids.dtype == np.int64 and mask.dtype == np.float32
    assert ids.shape == mask.shape == (3, 4)
    assert ids[0].tolist() == [*EXPECTED_AB, 0] and mask[0].tolist() == [1, 1, 1, 0]
    assert mask[1].sum() == 0 and mask[2].sum() == 4


def test_tokenizer_round_trips(tmp_path) -> None:
    tok = HashedNgramTokenizer(buckets=1000, max_len=9)
    assert HashedNgramTokenizer.load(tok.save(tmp_path / "tokenizer.json")) == tok
