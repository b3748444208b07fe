from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from emopulse.training.baselines import majority_baseline, tfidf_logreg_baseline
from emopulse.training.evaluation import balanced_sample, detailed_report, evaluate_ranking


def test_balanced_sample_takes_at_most_n_per_main_emote_seeded() -> None:
    main = np.array([0] * 50 + [1] * 10 + [2] * 40)
    rows = balanced_sample(main, per_emote=35, seed=3)
    assert np.bincount(main[rows]).tolist() == [35, 10, 35]
    assert rows.tolist() == balanced_sample(main, per_emote=35, seed=3).tolist()
    assert rows.tolist() != balanced_sample(main, per_emote=35, seed=4).tolist()


def test_evaluate_ranking_natural_and_balanced() -> None:
    # 4 comments of emote 0 (all ranked right), 1 of emote 1 (ranked wrong); balanced caps at 1 each
    scores = np.array([[0.9, 0.1]] * 5)
    got = evaluate_ranking(scores, main=[0, 0, 0, 0, 1], label_sets=[[0], [0], [0], [0, 1], [1]], per_emote=1)
    assert got["natural"]["top1_strict"] == pytest.approx(0.8) and got["natural"]["top1_any"] == pytest.approx(0.8)
    assert got["balanced"]["top1_strict"] == pytest.approx(0.5) and got["n_balanced"] == 2 and got["n"] == 5


def test_detailed_report_by_hand() -> None:
    labels = ["[a]", "[b]", "[c]"]
    scores = np.array([[0.9, 0.5, 0.1],   # main a, predicted a
                       [0.8, 0.7, 0.1],   # main b, predicted a: b at rank 2
                       [0.1, 0.2, 0.9],   # main c, predicted c
                       [0.7, 0.2, 0.3]])  # main c, predicted a: c at rank 2
    report = detailed_report(scores, main=[0, 1, 2, 2], labels=labels)
    a, b, c = (report["per_emote"][x] for x in labels)
    assert (a["precision"], a["recall"], a["support"], a["predicted"]) == (pytest.approx(1 / 3), 1.0, 1, 3)
    assert (b["precision"], b["recall"], b["f1"], b["mean_rank"]) == (0.0, 0.0, 0.0, 2.0)
    assert (c["precision"], c["recall"], c["f1"], c["mean_rank"]) == (1.0, 0.5, pytest.approx(2 / 3), 1.5)
    assert report["mean_rank"] == pytest.approx(1.5)
    assert report["confusions"] == [{"true": "[b]", "predicted": "[a]", "count": 1},
                                    {"true": "[c]", "predicted": "[a]", "count": 1}]
    assert report["top1_distribution"] == {"[a]": 3, "[c]": 1}


def test_tfidf_baseline_learns_phrases_and_picks_c_on_validation() -> None:
    phrases = ["哈哈哈", "狗头保命", "呜呜呜"]
    rng = np.random.default_rng(0)
    main = rng.integers(0, 3, size=120)
    texts = [f"{'的了是'[i % 3]}{phrases[m]}" for i, m in enumerate(main)]
    scores, info = tfidf_logreg_baseline(texts[:80], main[:80], num_labels=4, val_texts=texts[80:100],
                                         val_main=main[80:100], test_texts=texts[100:], Cs=(0.01, 4.0))
    assert scores.shape == (20, 4) and (scores[:, 3] == 0).all()  # an emote unseen in training scores 0
    assert (scores.argmax(axis=1) == main[100:]).all() and info["C"] == 4.0
    majority = majority_baseline(main[:80], num_labels=4, n=3)
    assert (majority.argmax(axis=1) == np.bincount(main[:80]).argmax()).all()


def test_importing_the_packages_does_not_import_torch() -> None:
    code = ("import sys, emopulse.training, emopulse.serving; emopulse.training.Split; "
            "import emopulse.training.encoders.tokenizers; "
            "print('torch' in sys.modules, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
