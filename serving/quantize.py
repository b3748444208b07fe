"""The int8 variant: ONNX Runtime dynamic quantisation (int8 weights, one scale per output channel;
activations quantised per batch at run time), and what it changes against the fp32 graph on
held-out records.

On multilingual-e5-small (the bench's ranker, AVX2 without VNNI) per-channel weight scales beat
the per-tensor default on both counts (Top-1 agreement with fp32 0.87 vs 0.78, 3.8x vs 2.4x the
fp32 time on sorted batches); `reduce_range` and excluding the embedding `Gather` or the last
layers did not help. What did: keeping each transformer layer's feed-forward output projection in
float (`KEEP_FLOAT`). Its input is the GELU output, 1,536 wide with the widest range of any
activation, and one scale per tensor leaves its small values few levels (on the emoji model,
Top-1 agreement 0.914 → 0.945-0.957; a transformer keeps 12 of its 72 matrices in float). Such
a model is sensitive: its e5 embeddings all lie within a narrow cone and 1/tau is large, so even
int8 weights with float activations changed 2% of its Top-1 picks, and int8 activations scaled
per token (0.979) ran at a third of fp32's speed through generic ONNX ops. That is why the change
is measured and scoring uses int8 only within a setting.

`quant_pre_process` (shape inference and graph optimisation) goes first where it works: with
symbolic shapes for a graph like the n-gram bag; a transformers encoder's graph defeats the
symbolic pass (`Min(128, tokens)`), so it is retried with ONNX's own shape inference only, and
failing that the raw graph is quantised.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import heads

if TYPE_CHECKING:
    from emopulse.training.preprocess import Preprocessor
    from emopulse.training.result import Head

    from .runtime import ModelSession

__all__ = ["int8_change", "quantize_int8", "quantization_quality"]

log = logging.getLogger(__name__)
TIE = 1e-6  # probabilities this close are a tie: either order agrees


# MatMul nodes kept in float: a transformer layer's feed-forward output projection (torch's
# exporter names it `/.../layer.N/output/dense/MatMul`; the attention's is `/attention/output/...`)
KEEP_FLOAT = re.compile(r"/output/dense/MatMul")


def float_kept(model: Any) -> list[str]:
    """The names of the nodes of an ONNX model that `quantize_int8` keeps in float."""
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and KEEP_FLOAT.search(n.name) and "attention" not in n.name]


def quantize_int8(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Write the int8 variant of `src` to `dst`; returns how (`pre_process`: symbolic | onnx | none;
    `kept_float`: how many MatMul nodes stay in float)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src).absolute(), Path(dst).absolute()
    quantizer_log = logging.getLogger("root")
    level = quantizer_log.level
    quantizer_log.setLevel(logging.ERROR)  # "consider pre-processing" / shape-inference noise
    cwd = os.getcwd()
    try:
        with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
            os.chdir(tmp)  # a failed symbolic pass leaves a `<uuid>.data` file in the working folder
            prepared, how = src, "none"
            for name, skip_symbolic in (("symbolic", False), ("onnx", True)):
                candidate = Path(tmp) / f"pre-{name}.onnx"
                try:
                    quant_pre_process(str(src), str(candidate), skip_symbolic_shape=skip_symbolic)
                except Exception as exc:  # the pre-pass is an optimisation: try the next one
                    log.debug("quant_pre_process (%s) failed on %s: %s", name, src, exc)
                    continue
                prepared, how = candidate, name
                break
            keep = float_kept(onnx.load(str(prepared), load_external_data=False))
            quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                             nodes_to_exclude=keep)
            os.chdir(cwd)
    finally:
        os.chdir(cwd)
        quantizer_log.setLevel(level)
    return {"method": "onnxruntime dynamic quantisation: int8 weights per output channel, uint8 activations "
                      "per tensor at run time; feed-forward output projections kept in float",
            "pre_process": how, "kept_float": len(keep)}


def quantization_quality(fp32: ModelSession, int8: ModelSession, preprocessor: Preprocessor, head: Head,
                         records: Sequence[Any], *, k: int = 5, batch_size: int = 64) -> dict[str, Any]:
    """What int8 changes against fp32 on `records`.

    Ranking and multilabel: Top-1 and Top-k agreement (the same label first; the same k labels, in
    any order; labels fp32 scores within 1e-6 of each other count as ties), the largest
    probability/intensity difference; multilabel also the share of (record, label) on/off
    decisions that agree. Regression: the mean absolute difference, and it over the fp32 outputs'
    standard deviation. `change` is the one number scoring compares with its setting: 1 - Top-1
    agreement (multilabel: the worse of that and 1 - on/off agreement), or the relative MAE; a
    graph with other outputs (a forecaster's share) counts their relative MAE too
    (`other_outputs`), the worst of all.

    A head with the EQN quantisation (`head.quantize`): the agreements (and so `change`) are
    measured on the quantised intensities, the values scoring writes and thresholds, since a
    label that int8 moves across a rounding boundary is a change a reader sees, and labels the
    rounding makes equal are a tie either way; `max_prob_diff` stays the largest difference of
    the sigmoids before it (comparable with other models), and `max_served_diff` is that of the
    quantised intensities (0, 0.01, 0.02, ...)."""
    want = _outputs(fp32, preprocessor, head, records, batch_size)
    got = _outputs(int8, preprocessor, head, records, batch_size)
    out: dict[str, Any] = {"records": len(records)}
    if not len(records):
        return {**out, "change": None}
    others = _other_outputs(fp32, int8, preprocessor, head, records, batch_size)
    if others:  # a forecaster's share beside its trend: what int8 changes there counts too
        out["other_outputs"] = others
    worst_other = max((o["relative_mae"] for o in others.values()), default=0.0)
    if head.kind == "regression":
        mae = float(np.mean(np.abs(want - got)))
        sd = float(np.std(want))
        relative = mae / max(sd, 1e-12)
        return {**out, "mae_vs_fp32": mae, "fp32_sd": sd, "relative_mae": relative, "change": max(relative, worst_other)}
    max_diff = float(np.max(np.abs(want - got)))
    if heads.quantizes(head):  # what scoring writes (docstring)
        want, got = heads.quantize_intensity(want), heads.quantize_intensity(got)
        out["max_served_diff"] = float(np.max(np.abs(want - got)))
    top1 = float(heads.top_k_agreement(want, got, 1, tie_tol=TIE).mean())
    topk = float(heads.top_k_agreement(want, got, k, tie_tol=TIE, ordered=False).mean())
    out |= {"top1_agreement": top1, f"top{min(k, want.shape[1])}_agreement": topk, "max_prob_diff": max_diff}
    change = 1.0 - top1
    if head.kind == "multilabel":
        thresholds = np.asarray(head.thresholds or [0.5] * len(head.labels))
        on = float(((want >= thresholds) == (got >= thresholds)).mean())
        out["on_off_agreement"] = on
        change = max(change, 1.0 - on)
    return {**out, "change": max(change, worst_other)}


def _other_outputs(fp32: ModelSession, int8: ModelSession, preprocessor: Preprocessor, head: Head,
                   records: Sequence[Any], batch_size: int) -> dict[str, dict[str, float]]:
    """Every output but the head's, int8 against fp32 as values: the mean absolute difference and
    it over the fp32 values' standard deviation (`relative_mae`)."""
    names = [o.name for o in fp32.session.get_outputs() if o.name != head.output]
    out = {}
    for name in names:
        want, got = [], []
        for start in range(0, len(records), batch_size):
            feeds = preprocessor.encode(list(records[start:start + batch_size]))
            want.append(np.asarray(fp32.run(feeds, [name])[name], np.float64).reshape(len(feeds[next(iter(feeds))]), -1))
            got.append(np.asarray(int8.run(feeds, [name])[name], np.float64).reshape(want[-1].shape))
        w, g = np.concatenate(want), np.concatenate(got)
        mae = float(np.mean(np.abs(w - g)))
        out[name] = {"mae_vs_fp32": mae, "fp32_sd": float(np.std(w)), "relative_mae": mae / max(float(np.std(w)), 1e-12)}
    return out


def int8_change(metrics: dict[str, Any]) -> float | None:
    """The registered int8 variant's `change`, or None when there is no measured one."""
    info = metrics.get("int8") or {}
    quality = info.get("quality") or {}
    value = quality.get("change")
    return None if value is None or not quality.get("records") else float(value)


def _outputs(session: ModelSession, preprocessor: Preprocessor, head: Head, records: Sequence[Any],
             batch_size: int) -> np.ndarray:
    order = np.argsort([preprocessor.length(r) for r in records], kind="stable")
    out: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        raw = session.run(preprocessor.encode([records[i] for i in rows]), [head.output])[head.output]
        values = heads.values(head, raw, quantized=False)  # quantised by the caller where it counts
        if out is None:
            out = np.zeros((len(records), values.shape[1]))
        out[rows] = values
    return out if out is not None else np.zeros((0, len(head.labels)))
