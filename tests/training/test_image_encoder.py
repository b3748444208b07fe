"""The offline EfficientNet-Lite0 image encoder on small generated PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

image_module = pytest.importorskip("emopulse.training.encoders.image")


@pytest.fixture(scope="module")
def encoder():
    return image_module.ImageEncoder.pretrained(batch_size=4)


def shape_png(path: Path, kind: str, colour: tuple[int, int, int], shift: int = 0) -> Path:
    image = Image.new("RGB", (64, 48), "white")
    draw = ImageDraw.Draw(image)
    box = (8 + shift, 8, 40 + shift, 40)
    (draw.ellipse if kind == "circle" else draw.rectangle)(box, fill=colour)
    image.save(path)
    return path


def test_embeddings_are_unit_vectors_and_bad_files_are_reported(encoder, tmp_path: Path) -> None:
    paths = [shape_png(tmp_path / "a.png", "circle", (200, 30, 30)),
             shape_png(tmp_path / "b.png", "circle", (200, 30, 30), shift=3),
             shape_png(tmp_path / "c.png", "square", (30, 30, 200))]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    vectors, kept, errors = encoder.embed_files([paths[0], broken, paths[1], paths[2]])
    assert vectors.shape == (3, 1280) and vectors.dtype == np.float32
    assert kept == [0, 2, 3]
    assert len(errors) == 1 and str(broken) in errors[0]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, different = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > different  # a shifted red circle is nearer than a blue square
    again, _, _ = encoder.embed_files(paths[:1])
    assert np.allclose(again[0], vectors[0], atol=1e-5)  # deterministic (eval mode)


def test_preprocessing_gives_the_backbones_input(tmp_path: Path) -> None:
    pixels = image_module.ImagePreprocess()(Image.new("RGB", (300, 120), (255, 0, 0)))
    assert tuple(pixels.shape) == (3, 224, 224)
    assert float(pixels[0].mean()) == pytest.approx((1 - 0.498) / 0.502, abs=1e-4)
    assert float(pixels[1].mean()) == pytest.approx(-0.498 / 0.502, abs=1e-4)
