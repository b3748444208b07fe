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


def test_tfidf_baseline_learns_phrases() -> None:
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


def cue_data(seed: int = 0):
    """Training: 80 plain comments of emote 0, 20 of emote 1 carrying a rare cue 稀. Strong
    regularisation (small C) ignores the cue and answers the prior; weak (large C) follows it."""
    rng = np.random.default_rng(seed)

    def text(cue: str) -> str:
        return "".join(rng.choice(list("的了是在我有这个们中来上大为和"), 4)) + cue

    train = [text("") for _ in range(80)] + [text("稀") for _ in range(20)]
    return train, np.array([0] * 80 + [1] * 20), [text("稀") for _ in range(20)], [text("稀") for _ in range(20)]


@pytest.mark.parametrize("cs", [(0.01, 10.0), (10.0, 0.01)])
def test_tfidf_picks_c_on_validation_even_when_the_test_would_pick_another(cs) -> None:
    train, train_main, val, test = cue_data()
    # on validation the cue misleads (small C wins); on test it is right (large C would win)
    scores, info = tfidf_logreg_baseline(train, train_main, num_labels=2, val_texts=val, val_main=np.zeros(20, int),
                                         test_texts=test, Cs=cs)
    test_main = np.ones(20, int)
    best_on_test = max((tfidf_logreg_baseline(train, train_main, num_labels=2, val_texts=val,
                                              val_main=np.zeros(20, int), test_texts=test, Cs=(c,))[0].argmax(1)
                        == test_main).mean() for c in cs)
    assert info["C"] == 0.01 and info["val_top1_by_C"]["0.01"] > info["val_top1_by_C"]["10.0"]
    assert (scores.argmax(axis=1) == test_main).mean() < best_on_test - 0.5  # the test's choice was not taken
    # the same data with the validation labels flipped: now the large C is the validation's choice
    _, flipped = tfidf_logreg_baseline(train, train_main, num_labels=2, val_texts=val, val_main=np.ones(20, int),
                                       test_texts=test, Cs=cs)
    assert flipped["C"] == 10.0


def test_tfidf_results_are_cached_by_their_inputs(tmp_path) -> None:
    train, train_main, val, test = cue_data()
    args = dict(num_labels=2, val_texts=val, val_main=np.zeros(20, int), test_texts=test, Cs=(0.01, 10.0))
    first = tfidf_logreg_baseline(train, train_main, cache_dir=tmp_path, **args)
    again = tfidf_logreg_baseline(train, train_main, cache_dir=tmp_path, **args)
    assert len(list(tmp_path.glob("tfidf-*.npz"))) == 1
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1] == again[1]
    tfidf_logreg_baseline(train, train_main, cache_dir=tmp_path, **{**args, "val_main": np.ones(20, int)})
    assert len(list(tmp_path.glob("tfidf-*.npz"))) == 2  # other inputs, another entry


def test_importing_the_packages_does_not_import_torch() -> None:
    code = ("import sys, emopulse.training, emopulse.serving; emopulse.training.Split; "
            "import emopulse.training.encoders.tokenizers; "
            "print('torch' in sys.modules, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
