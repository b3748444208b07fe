"""emopulse.serving: ONNX export and parity checks, the model registry, ONNX Runtime sessions
(CUDA when it really loads, else CPU) and batch scoring back into the warehouse.

Names are re-exported lazily (PEP 562): importing the package loads neither torch nor onnxruntime.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "OPSET": ".export", "ParityError": ".export", "check_parity": ".export",
    "export_onnx": ".export", "export_text_model": ".export",
    "Device": ".runtime", "ModelFileError": ".runtime", "ModelSession": ".runtime",
    "ProviderUnavailable": ".runtime", "open_session": ".runtime",
    "ModelRecord": ".registry", "export_and_register": ".registry", "find_model": ".registry",
    "model_dir": ".registry",
    "sha256_file": ".registry", "verify_artifact": ".registry",
    "EmojiScorer": ".score", "ScoreSummary": ".score", "prediction_rows": ".score", "score_comments": ".score",
    "PredictSummary": ".predict", "predict_csv": ".predict",
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
