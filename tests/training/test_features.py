"""The feature cache: hits and misses, encoders told apart by content (not by where they lie), and
writes that a kill cannot corrupt."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from emopulse.training import features
from emopulse.training.encoders.text import TextEncoder, embed_texts
from emopulse.training.encoders.tokenizers import TextTokenizer
from emopulse.training.features import FeatureCache, cached_features, encoder_fingerprint, input_key, text_features


class Counting:
    """A stand-in encoder: vector i of text t is (len(t), i), and it counts what it encodes."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, batch: list[str]) -> np.ndarray:
        self.seen += batch
        return np.array([[len(t), i] for i, t in enumerate(batch)], np.float32)


def run(texts: list[str], root: Path, encoder: Counting, **kw) -> np.ndarray:
    cache = FeatureCache(root, "test", "fp0")
    return cached_features(texts, [input_key(t) for t in texts], encoder, dim=2, cache=cache, **kw)


def test_a_second_run_hits_and_only_new_inputs_miss(tmp_path) -> None:
    first = Counting()
    a = run(["哈哈", "狗头保命", "哈哈"], tmp_path, first, batch_size=1)
    assert first.seen == ["哈哈", "狗头保命"]  # each distinct input once
    np.testing.assert_array_equal(a[0], a[2])
    again = Counting()
    b = run(["狗头保命", "哈哈", "新的"], tmp_path, again)
    assert again.seen == ["新的"]
    np.testing.assert_array_equal(b[:2], a[[1, 0]])
    assert len(FeatureCache(tmp_path, "test", "fp0")) == 3


def test_fingerprints_name_content_not_place(tmp_path, tiny_encoder) -> None:
    here = encoder_fingerprint(tiny_encoder)
    moved = shutil.copytree(tiny_encoder, tmp_path / "elsewhere" / "renamed")  # new path, new mtimes
    time.sleep(0.01)
    (moved / "config.json").touch()
    assert encoder_fingerprint(moved) == here
    assert encoder_fingerprint(moved, {"prefix": "query: "}) != here  # a setting is part of it
    (moved / "config.json").write_text((moved / "config.json").read_text() + " ")
    assert encoder_fingerprint(moved) != here  # a changed file is another encoder
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x" * (5 << 20))
    renamed = tmp_path / "other-name.pth"
    shutil.copy(weights, renamed)
    assert encoder_fingerprint(weights) == encoder_fingerprint(renamed)  # a file: its content only
    with open(renamed, "r+b") as f:  # a big file: its last MiB counts
        f.seek((5 << 20) - 10)
        f.write(b"y")
    assert encoder_fingerprint(weights) != encoder_fingerprint(renamed)
    assert encoder_fingerprint("some/hub-id") != encoder_fingerprint("other/hub-id")


def test_text_features_hit_from_a_moved_encoder_and_two_encoders_do_not_collide(tmp_path, tiny_encoder,
                                                                                monkeypatch) -> None:
    from emote_fixtures import build_tiny_encoder

    texts = ["哈哈哈", "狗头保命"]
    root = tmp_path / "cache"
    tok = TextTokenizer(str(tiny_encoder), max_len=32)
    encoder = TextEncoder.from_pretrained(tiny_encoder)
    first = embed_texts(encoder, tok, texts, cache_dir=root)
    assert [p.name.split("-")[0] for p in root.iterdir()] == ["text"]

    other_folder = build_tiny_encoder(tmp_path / "other", seed=1)  # same shapes, other weights
    other = text_features(TextEncoder.from_pretrained(other_folder), TextTokenizer(str(other_folder), max_len=32),
                          texts, root=root)
    assert len(list(root.iterdir())) == 2 and not np.allclose(first, other)

    moved = shutil.copytree(tiny_encoder, tmp_path / "moved-home" / "e5")
    moved_encoder = TextEncoder.from_pretrained(moved)
    monkeypatch.setattr(moved_encoder, "forward", lambda *a: pytest.fail("a moved encoder must hit the cache"))
    again = text_features(moved_encoder, TextTokenizer(str(moved), max_len=32), texts[::-1], root=root)
    np.testing.assert_array_equal(again, first[::-1])
    with torch.no_grad():
        ids, mask = map(torch.from_numpy, tok.encode(texts[:1]))
        np.testing.assert_allclose(first[0], encoder.eval()(ids, mask)[0].numpy(), atol=1e-5)


def test_a_write_killed_before_its_rename_leaves_the_cache_as_it_was(tmp_path, monkeypatch) -> None:
    run(["一", "二"], tmp_path, Counting())

    def killed(*args):
        raise KeyboardInterrupt  # the process dies between writing the temporary file and renaming it

    monkeypatch.setattr(features.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        run(["三"], tmp_path, Counting())
    monkeypatch.undo()
    enc = Counting()
    out = run(["一", "二", "三"], tmp_path, enc)
    assert enc.seen == ["三"] and out.shape == (3, 2)


def test_an_interrupted_run_keeps_the_batches_it_flushed(tmp_path) -> None:
    texts = [f"文本{i}" for i in range(10)]

    def dies_late(batch: list[str]) -> np.ndarray:
        if "文本8" in batch:
            raise RuntimeError("killed")
        return Counting()(batch)

    with pytest.raises(RuntimeError):
        run(texts, tmp_path, dies_late, batch_size=2, flush_every=4)
    enc = Counting()
    run(texts, tmp_path, enc, batch_size=2)
    assert sorted(enc.seen) == ["文本8", "文本9"]


def test_a_damaged_shard_is_skipped_and_its_inputs_encoded_again(tmp_path, caplog) -> None:
    run(["甲"], tmp_path, Counting())
    run(["乙"], tmp_path, Counting())
    shard = FeatureCache(tmp_path, "test", "fp0").shards()[-1]
    shard.write_bytes(shard.read_bytes()[:40])  # truncated: as a copy cut short would leave it
    enc = Counting()
    out = run(["甲", "乙"], tmp_path, enc)
    assert enc.seen == ["乙"] and out.shape == (2, 2)
    assert "unreadable shard" in caplog.text


def test_many_shards_are_merged_without_losing_a_vector(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(features, "MAX_SHARDS", 3)
    for i in range(5):
        run([f"t{i}"], tmp_path, Counting())
    cache = FeatureCache(tmp_path, "test", "fp0")
    assert len(cache.shards()) <= 3 and len(cache) == 5


WRITER = """
import sys, numpy as np
from emopulse.training.features import FeatureCache
cache = FeatureCache(sys.argv[1], "text", "fp")
for i in range(10_000):
    cache.put([f"{i}-{j}" for j in range(4000)], np.full((4000, 384), i, np.float32))
"""


def test_a_writer_killed_with_sigkill_never_leaves_a_half_shard(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
    folder = tmp_path / "text-fp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(folder.glob("part-*.npz"))) < 2:
        time.sleep(0.02)
    time.sleep(0.05)  # most likely in the middle of a write now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cache = FeatureCache(tmp_path, "text", "fp")
    shards = cache.shards()
    assert shards, "the writer wrote nothing before it was killed"
    for shard in shards:  # every shard under its real name is whole
        with np.load(shard) as f:
            assert len(f["keys"]) == len(f["vectors"]) and len(f["keys"]) % 4000 == 0
            assert f["vectors"].shape[1:] == (384,)
    assert len(cache) and len(cache) % 4000 == 0
    found = cache.get([f"{i}-0" for i in range(10_000)])
    assert all((v == int(k.split("-")[0])).all() for k, v in found.items())
