"""emopulse.serving: ONNX export of any trained model (parity checks, an int8 variant), the model
registry, ONNX Runtime sessions (CUDA when it really loads, else CPU), a scorer per head, and
scoring back into the warehouse's `predictions`. Nothing here knows a particular model.

Names are re-exported lazily (PEP 562): importing the package loads neither torch nor onnxruntime.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "OPSET": ".export", "ParityCheck": ".export", "ParityError": ".export", "check_parity": ".export",
    "export_onnx": ".export", "parity_everywhere": ".export",
    "quantize_int8": ".quantize", "quantization_quality": ".quantize",
    "Device": ".runtime", "ModelFileError": ".runtime", "ModelSession": ".runtime",
    "ProviderUnavailable": ".runtime", "open_session": ".runtime",
    "ArtifactMismatch": ".registry", "ModelRecord": ".registry", "export_and_register": ".registry",
    "find_model": ".registry", "model_dir": ".registry", "sha256_file": ".registry",
    "MultiLabelScorer": ".scorer", "RankingScorer": ".scorer", "RegressionScorer": ".scorer", "Scorer": ".scorer",
    "Scores": ".scorer", "load_scorer": ".scorer",
    "ScoreSummary": ".score", "score_comments": ".score", "score_entities": ".score", "score_model": ".score",
    "score_posts": ".score",
    "PredictSummary": ".predict", "predict_csv": ".predict",
    "AnnotateSummary": ".annotate", "AnnotatedFile": ".annotate", "annotate_files": ".annotate",
    "annotate_csv": ".annotate",
    "ForecastSummary": ".forecast", "forecast_trends": ".forecast",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
