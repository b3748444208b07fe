"""One scorer per head over a registered model: what each returns is what torch's module says,
through the head's post-processing, in batches sorted by length."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emopulse.serving import MultiLabelScorer, RankingScorer, RegressionScorer, load_scorer
from emopulse.training.result import TrainResult

TEXTS = ["狗头保命[doge]", "哈哈哈哈哈", "", "围观吃瓜的了是在我有这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于",
         "好漂亮啊", "加油冲鸭！！", "呜呜太感动"]


@pytest.fixture(scope="module")
def scorers(register_models):
    records = register_models(("ranker", "multilabel", "regressor", "poster"), home="scorers")
    return {name: load_scorer(record, device="cpu", variant="fp32") for name, record in records.items()}


def _torch(result: TrainResult, records) -> np.ndarray:
    feeds = {k: torch.from_numpy(v) for k, v in result.preprocessor.encode(records).items()}
    with torch.no_grad():
        return result.module(**feeds).double().numpy()


def test_ranking_gives_the_full_softmax_of_the_models_logits(scorers, ranker: TrainResult) -> None:
    scorer = scorers["ranker"]
    assert isinstance(scorer, RankingScorer) and scorer.variant == "fp32"
    scores = scorer.predict(TEXTS)
    logits = np.stack([_torch(ranker, [t])[0] for t in TEXTS])  # one by one: no padding at all
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    np.testing.assert_allclose(scores.values, softmax, atol=1e-6)
    np.testing.assert_allclose(scores.values.sum(axis=1), 1.0, atol=1e-9)
    labels, top = scorer.rank(TEXTS, k=3)
    assert labels.shape == top.shape == (len(TEXTS), 3)
    assert labels[0, 0] == "[doge]" and labels[1, 0] == "[笑哭]"  # it learned the phrases
    np.testing.assert_allclose(top, np.sort(softmax, axis=1)[:, ::-1][:, :3], atol=1e-6)
    rows = scorer.rows(list(range(len(TEXTS))), scores, k=3)
    assert rows["rank"].tolist() == [1, 2, 3] * len(TEXTS)
    assert rows.groupby("entity_id")["score"].apply(lambda s: s.is_monotonic_decreasing).all()


def test_multilabel_gives_sigmoid_intensities_and_per_label_thresholds(scorers, multilabel: TrainResult) -> None:
    scorer = scorers["multilabel"]
    assert isinstance(scorer, MultiLabelScorer)
    scores = scorer.predict(TEXTS)
    sigmoid = 1 / (1 + np.exp(-np.stack([_torch(multilabel, [t])[0] for t in TEXTS])))
    np.testing.assert_allclose(scores.values, sigmoid, atol=1e-6)
    assert ((scores.values >= 0) & (scores.values <= 1)).all()
    thresholds = np.array(multilabel.head.thresholds)
    np.testing.assert_array_equal(scorer.on(TEXTS), sigmoid >= thresholds)
    grid = np.linspace(0.05, 0.95, 19)[:, None].repeat(len(thresholds), 1)  # the thresholds really differ by label
    assert ((grid >= thresholds) != (grid >= 0.5)).any()
    rows = scorer.rows(["a", "b"], scorer.predict(TEXTS[:2]))
    assert len(rows) == 2 * len(thresholds)  # every label is a row
    for _, group in rows.groupby("entity_id"):
        assert sorted(group["rank"]) == list(range(1, len(thresholds) + 1))
        assert group.sort_values("rank")["score"].is_monotonic_decreasing


def test_regression_gives_the_values(scorers, regressor: TrainResult) -> None:
    scorer = scorers["regressor"]
    assert isinstance(scorer, RegressionScorer)
    rng = np.random.default_rng(5)
    records = [rng.normal(size=(n, 3)) for n in (3, 8, 11, 5)]
    want = np.concatenate([_torch(regressor, [r]) for r in records])
    np.testing.assert_allclose(scorer.predict(records, batch_size=2).values, want, atol=1e-5)
    assert scorer.rows(["w1", "w2", "w3", "w4"], scorer.predict(records))["label"].tolist() == ["share"] * 4


def test_image_text_scores_depend_on_the_image(scorers, tmp_path) -> None:
    from PIL import Image

    image = tmp_path / "red.png"
    Image.new("RGB", (40, 50), (220, 30, 30)).save(image)
    scores = scorers["poster"].predict([{"text": "好漂亮啊", "image": image}, {"text": "好漂亮啊", "image": None}])
    np.testing.assert_allclose(scores.values.sum(axis=1), 1.0, atol=1e-9)
    assert np.abs(scores.values[0] - scores.values[1]).max() > 1e-4


def test_batches_are_sorted_by_length_and_give_the_same_scores(scorers) -> None:
    scorer = scorers["ranker"]
    widths: list[int] = []
    run = scorer.session.run

    def spy(feeds, outputs=None):
        widths.append(feeds["input_ids"].shape[1])
        return run(feeds, outputs)

    texts = [t * (i % 4 + 1) for i, t in enumerate(TEXTS * 6)]
    object.__setattr__(scorer.session, "run", spy)
    try:
        unsorted = scorer.predict(texts, batch_size=4, sort=False)
        plain = list(widths)
        widths.clear()
        ordered = scorer.predict(texts, batch_size=4)
    finally:
        object.__delattr__(scorer.session, "run")
    assert widths == sorted(widths) and plain != sorted(plain)
    assert sum(widths) < sum(plain)  # less padding
    np.testing.assert_allclose(ordered.values, unsorted.values, atol=1e-6)  # each text's scores, in its place
