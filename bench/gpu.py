"""Bench: the GPU checks, where one is present: parity on the CUDA provider, scoring throughput and
one training step, for a model of every head and input kind.

    .venv/bin/python bench/gpu.py [--encoder DIR] [--records 2048] [--cpu]

Models: hashed n-grams → emote ranking (text), the same with sigmoids (multi-label), a masked mean
over a [days, features] sequence → a share (regression), text + image → 3 classes (image+text),
and, when `--encoder` (default `$EMOPULSE_HOME/models/multilingual-e5-small`) exists, the e5 ranker
(e5 + a linear head: the shape of emoji_align's gpu profile, which fine-tunes the encoder).

For each: export to ONNX (the serving path), `check_parity` on a session that really runs on
`CUDAExecutionProvider` (probabilities / values within 1e-3 and the top-k labels), records/s
scoring `--records` records in length-sorted batches of 256 through ONNX Runtime on CUDA, and one
AdamW step of the torch module on `cuda` (forward, loss, backward, step; the second of two timed).

Where no GPU is present (torch sees no CUDA device and no ONNX Runtime session runs on CUDA) it
prints SKIPPED and why, and exits 0. `--cpu` runs the same checks on the CPU instead: it checks the
script itself on a machine without a GPU; its figures are not GPU figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CUDA = "CUDAExecutionProvider"


def _models(encoder: Path | None) -> list[tuple[str, Any, Any, Any, str]]:
    """(name, module, preprocessor, head, loss) for each kind."""
    import torch
    from torch import nn

    from emopulse.training.encoders.ngrams import NgramBagEncoder
    from emopulse.training.encoders.tokenizers import HashedNgramTokenizer, TextTokenizer
    from emopulse.training.preprocess import (
        ImagePreprocessor, ImageTextPreprocessor, SequencePreprocessor, TextPreprocessor,
    )
    from emopulse.training.result import Head

    class TextHead(nn.Module):
        def __init__(self, text: nn.Module, dim: int, labels: int) -> None:
            super().__init__()
            self.text, self.out = text, nn.Linear(dim, labels)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.out(self.text(input_ids, attention_mask))

    class SequenceMean(nn.Module):
        def __init__(self, features: int) -> None:
            super().__init__()
            self.out = nn.Linear(features, 1)

        def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.out((values * mask).sum(1) / mask.sum(1).clamp(min=1.0))

    class Post(nn.Module):
        def __init__(self, vocab: int, dim: int = 32) -> None:
            super().__init__()
            self.text = NgramBagEncoder(vocab, dim)
            self.image = nn.Sequential(nn.Conv2d(3, dim, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.out = nn.Linear(2 * dim, 3)

        def forward(self, input_ids, attention_mask, pixels, has_image):  # noqa: ANN001, ANN201
            image = self.image(pixels) * has_image.unsqueeze(1)
            return self.out(torch.cat([self.text(input_ids, attention_mask), image], dim=1))

    torch.manual_seed(0)
    text = TextPreprocessor(HashedNgramTokenizer(buckets=1 << 14, max_len=256), clean="strip_emotes")
    labels = tuple(f"[e{i}]" for i in range(27))
    rng = np.random.default_rng(0)
    seq = SequencePreprocessor.fit(rng.normal(size=(32, 60, 8)), features=tuple(f"f{i}" for i in range(8)))
    post = ImageTextPreprocessor(TextPreprocessor(HashedNgramTokenizer(buckets=1 << 14, max_len=128)),
                                 ImagePreprocessor())
    out = [
        ("ranking (n-grams)", TextHead(NgramBagEncoder(text.tokenizer.vocab_size, 128), 128, 27), text,
         Head("ranking", labels), "ce"),
        ("multilabel (n-grams)", TextHead(NgramBagEncoder(text.tokenizer.vocab_size, 128), 128, 28), text,
         Head("multilabel", tuple(f"emotion{i}" for i in range(28)), thresholds=(0.5,) * 28), "bce"),
        ("regression (sequence)", SequenceMean(8), seq, Head("regression", ("share",)), "mse"),
        ("image+text", Post(post.text.tokenizer.vocab_size), post, Head("ranking", ("neg", "neu", "pos")), "ce"),
    ]
    if encoder is not None and encoder.is_dir():
        from emopulse.training.encoders.text import TextEncoder

        e5 = TextEncoder.from_pretrained(encoder)
        pre = TextPreprocessor(TextTokenizer(str(encoder), max_len=96, prefix="query: "), clean="strip_emotes")
        out.append(("e5 ranker (fine-tuned)", TextHead(e5, e5.dim, 27), pre, Head("ranking", labels), "ce"))
    return out


def _records(pre: Any, n: int, texts: list[str]) -> list[Any]:
    rng = np.random.default_rng(1)
    if pre.kind == "text":
        return [texts[i % len(texts)] for i in range(n)]
    if pre.kind == "sequence":
        return [rng.normal(size=(60, len(pre.features))) for _ in range(n)]
    from PIL import Image

    images = [Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(8)]
    return [{"text": texts[i % len(texts)], "image": images[i % 8] if i % 2 else None} for i in range(n)]


def _texts() -> list[str]:
    data = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bilibili" / "xycode_comments.csv"
    if data.is_file():
        from emopulse.ingest.files import read_comment_file

        texts = [c.message for c in read_comment_file(data).comments if c.sentence.strip()]
        if texts:
            return texts
    from emopulse.training.preprocess import PARITY_TEXTS

    return [t for t in PARITY_TEXTS if t]


def _train_step(module: Any, pre: Any, head: Any, loss: str, records: list[Any], device: str) -> float:
    """Seconds of one AdamW step (the second of two: the first pays for kernels and allocations)."""
    import torch
    from torch import nn

    module = module.to(device).train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    feeds = {k: torch.from_numpy(v).to(device) for k, v in pre.encode(records).items()}
    n = len(records)
    if loss == "ce":
        target = torch.randint(0, len(head.labels), (n,), device=device)
    else:
        target = torch.rand(n, len(head.labels), device=device)
    fn = {"ce": nn.functional.cross_entropy, "bce": nn.functional.binary_cross_entropy_with_logits,
          "mse": nn.functional.mse_loss}[loss]
    seconds = 0.0
    for _ in range(2):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        opt.zero_grad()
        fn(module(**feeds), target).backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    module.cpu().eval()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", type=Path,
                        default=Path(os.environ.get("EMOPULSE_HOME", "var")) / "models" / "multilingual-e5-small")
    parser.add_argument("--records", type=int, default=2048, help="records scored per model")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--cpu", action="store_true", help="the same checks on the CPU (no GPU figures)")
    args = parser.parse_args(argv)

    import onnxruntime as ort
    import torch

    from emopulse.serving.export import check_parity, export_onnx
    from emopulse.serving.heads import values
    from emopulse.serving.runtime import open_session

    torch_cuda = torch.cuda.is_available()
    ort_cuda = False
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        if not args.cpu:
            probe = _models(None)[0]
            path = export_onnx(probe[1], probe[2], Path(tmp) / "probe.onnx")
            ort_cuda = CUDA in ort.get_available_providers() and open_session(path, device="auto").provider == CUDA
            if not torch_cuda and not ort_cuda:
                print("SKIPPED: no GPU here. torch.cuda.is_available() is False (torch "
                      f"{torch.__version__}); no ONNX Runtime session runs on {CUDA} (listed as available: "
                      f"{CUDA in ort.get_available_providers()}). Run it where a GPU is, or with --cpu to check "
                      "the script.")
                return 0
        device = "cpu" if args.cpu else "cuda"
        print(f"device: {device}" + ("" if args.cpu else f" ({torch.cuda.get_device_name(0) if torch_cuda else 'torch: no CUDA'}; "
                                                       f"ONNX Runtime on CUDA: {ort_cuda})"))
        texts = _texts()
        models = _models(args.encoder)
        rows = []
        for name, module, pre, head, loss in models:
            module.eval()
            path = export_onnx(module, pre, Path(tmp) / f"{len(rows)}.onnx", output_names=(head.output,))
            row: dict[str, Any] = {"model": name}
            if args.cpu or ort_cuda:
                session = open_session(path, device="cpu" if args.cpu else "cuda")
                check = check_parity(module, session, pre, head, atol=1e-3)
                row |= {"provider": check.provider, "max_diff": check.max_diff, "top_k": check.top_k_agreement}
                records = _records(pre, args.records, texts)
                order = np.argsort([pre.length(r) for r in records], kind="stable")
                session.run(pre.encode([records[i] for i in order[:args.batch]]), [head.output])  # warm-up
                started = time.perf_counter()
                for start in range(0, len(order), args.batch):
                    batch = [records[i] for i in order[start:start + args.batch]]
                    values(head, session.run(pre.encode(batch), [head.output])[head.output])
                row["records_per_s"] = len(records) / (time.perf_counter() - started)
            else:
                row |= {"provider": "skipped: no ONNX Runtime session on CUDA"}
            if args.cpu or torch_cuda:
                row["train_step_ms"] = 1000 * _train_step(module, pre, head, loss,
                                                          _records(pre, args.train_batch, texts), device)
            else:
                row["train_step_ms"] = None
            rows.append(row)
            print(_line(row), flush=True)
    if not any("e5" in r["model"] for r in rows):
        print(f"(no e5 ranker: {args.encoder} is not a folder; `emopulse models prepare` writes one)")
    return 0


def _line(row: dict[str, Any]) -> str:
    def f(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    return (f"{row['model']:<24} parity on {row['provider']}: max diff {f(row.get('max_diff'), '.2e')}, "
            f"top-k agreement {f(row.get('top_k'), '.3f')}; scoring {f(row.get('records_per_s'), ',.0f')} records/s; "
            f"one training step {f(row.get('train_step_ms'), ',.1f')} ms")


if __name__ == "__main__":
    sys.exit(main())
