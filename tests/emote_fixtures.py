"""Helpers shared by several test folders (importable: tests/ is on sys.path through its conftest):
a tiny random transformers encoder built locally, and a synthetic emote dataset whose emotes each
come with their own phrase."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PHRASES = {"[笑哭]": "哈哈哈", "[doge]": "狗头保命", "[大哭]": "呜呜太感动", "[打call]": "加油冲鸭",
           "[吃瓜]": "围观吃瓜", "[星星眼]": "好漂亮啊"}
WEIGHTS = [0.35, 0.2, 0.15, 0.1, 0.1, 0.1]
FILLER = list("的了是在我有这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里")


def synthetic_emote_rows(n_comments: int = 400, *, seed: int = 0, videos: int = 12) -> pd.DataFrame:
    """(comment, emote) rows shaped like `emoji_training_set`; about 10% of comments carry two
    emotes; every 10th comment has no video."""
    rng = np.random.default_rng(seed)
    emotes = list(PHRASES)
    rows = []
    for rpid in range(1, n_comments + 1):
        main = emotes[rng.choice(len(emotes), p=WEIGHTS)]
        chosen = list(dict.fromkeys([main] + ([emotes[rng.integers(len(emotes))]] if rng.random() < 0.1 else [])))
        sentence = "".join(rng.choice(FILLER, size=rng.integers(2, 8))) + PHRASES[main]
        message = sentence + main + main + "".join(chosen[1:])
        for emote in chosen:
            rows.append({"rpid": rpid, "bvid": None if rpid % 10 == 0 else f"BV{rpid % videos:02d}",
                         "emoji_alt": emote, "emoji_name": emote.strip("[]"), "message": message,
                         "sentence": sentence})
    return pd.DataFrame(rows)


def build_tiny_encoder(folder: Path, *, seed: int = 0, layers: int = 4) -> Path:
    """A 4-layer BERT (hidden 32; enough for the last-four-layer pooling) with random weights and a character tokenizer over the test
    phrases, saved as a transformers folder: loads with `from_pretrained`, offline."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    chars = sorted({c for text in [*PHRASES.values(), "".join(FILLER), "导出样例第二个例子长一点的句子前方高能预警！up主太强三连支持呜好感动笑死我离谱吧",
                                   "query: sample text abcdefghijklmnopqrstuvwxyz,."] for c in text})
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *chars])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]")
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=128), add_pooling_layer=False)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
