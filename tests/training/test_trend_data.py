"""The trend forecaster's data side on a real warehouse: windows read out of the day matrix are the
warehouse's own windows, the walk-forward folds never let a label from the future into training,
the window preprocessor agrees with itself batched and record by record, and the forecast
metrics on hand-computed cases."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from trend_fixtures import write_trend_posts

from emopulse.flows.posts import import_posts
from emopulse.flows.settings import Settings
from emopulse.training.daymatrix import read_day_matrix, read_windows
from emopulse.training.metrics import forecast_metrics, interval_coverage, spearman_by_group, tercile_classes
from emopulse.training.preprocess import WindowPreprocessor, load_preprocessor
from emopulse.training.splits import month_end, walk_forward_folds


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trend-data")
    posts, texts = write_trend_posts(root / "data", days=430, categories=6, per_day=12, seed=3)
    settings = Settings(home=root / "home")
    import_posts(settings, [posts, texts], kind="mkt")
    return settings.database


def test_windows_gathered_from_the_day_matrix_are_the_warehouse_windows(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        seen = []
        matrix = read_day_matrix(con, text_embed=lambda texts: (seen.extend(texts), np.ones((len(texts), 4)))[1],
                                 text_dim=4)
        rows = con.execute("SELECT window_end, category, daily_posts, daily_likes, daily_collects, daily_comments "
                           "FROM trend_windows ORDER BY window_end, category").df()
        with_text = con.execute("""SELECT DISTINCT p.published_date AS day, i.category FROM post_texts AS t
                                   JOIN posts AS p USING (post_id) JOIN post_images AS i USING (post_id)""").df()
    assert len(rows) > 1000 and len(seen) == len(set(seen)) > 0  # each distinct text embedded once
    out = matrix.window(matrix.day_index(rows["window_end"]), matrix.category_index(rows["category"]), 60)
    for j, column in enumerate(("daily_posts", "daily_likes", "daily_collects", "daily_comments")):
        assert np.array_equal(out["counts"][..., j], np.stack(rows[column].map(np.asarray).to_list()))
    cells = set(zip(pd.to_datetime(with_text["day"]).dt.date, with_text["category"]))
    d, c = np.nonzero(matrix.text_index >= 0)
    assert {(matrix.start + pd.Timedelta(days=int(i)).to_pytimedelta(), int(matrix.categories[k]))
            for i, k in zip(d, c)} == cells
    assert out["text_mask"].sum() > 0 and np.array_equal(out["text"][..., 0], out["text_mask"])  # mean of ones
    with pytest.raises(ValueError, match="a window needs 60 days"):
        matrix.window(np.array([10]), np.array([0]), 60)
    with pytest.raises(ValueError, match="category 999 is not in the matrix"):
        matrix.category_index([999])


def test_the_matrix_from_a_later_day_gives_the_same_windows(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        whole = read_day_matrix(con)
        since = date(2023, 6, 1)
        late = read_day_matrix(con, since=since)
    assert late.start == since and late.num_days == whole.num_days - (since - whole.start).days
    ends = pd.to_datetime(["2023-09-30", "2023-10-27"])
    cats = [whole.categories[0], whole.categories[-1]]
    a = whole.window(whole.day_index(ends), whole.category_index(cats))
    b = late.window(late.day_index(ends), late.category_index(cats))
    assert np.array_equal(a["counts"], b["counts"]) and np.array_equal(a["totals"], b["totals"])


def _check_admissible(folds, ends: pd.Series, targets: pd.Series) -> None:
    for fold in folds:
        first_test = ends.iloc[fold.test].min()
        assert set(ends.iloc[fold.test].dt.to_period("M")) == {fold.test_month.to_period("M")}
        assert (month_end(targets.iloc[fold.train]) < ends.iloc[fold.val].min()).all()
        assert (month_end(targets.iloc[fold.val]) < first_test).all()
        assert ends.iloc[fold.val].max() < first_test and ends.iloc[fold.train].max() < ends.iloc[fold.val].min()


def test_walk_forward_folds_train_only_on_labels_known_before_the_test_month(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        windows = read_windows(con, labelled=True)
    ends, targets = pd.to_datetime(windows["window_end"]), pd.to_datetime(windows["target_month"])
    folds = walk_forward_folds(ends, targets, val_months=1)
    assert len(folds) >= 2
    _check_admissible(folds, ends, targets)
    assert [len(f.train) for f in folds] == sorted(len(f.train) for f in folds)  # expanding
    assert [f.test_month for f in folds] == sorted(f.test_month for f in folds)
    eligible = (ends.dt.day % 2 == 0).to_numpy()  # a test month whose first window ends on its 2nd day
    folds = walk_forward_folds(ends, targets, eligible=eligible)
    _check_admissible(folds, ends, targets)
    for fold in folds:
        assert eligible[fold.train].all() and eligible[fold.val].all() and eligible[fold.test].all()


def test_the_numbers_statistics_come_from_the_training_days_only(warehouse: Path) -> None:
    from emopulse.training.trend.train import fit_statistics, folds_of, prepare_data, profile_config

    cfg = profile_config("light", min_window_posts=10, min_month_posts=10)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        data = prepare_data(con, cfg)
    fold = folds_of(data, cfg)[0]
    pre = fit_statistics(data, fold.train, data.preprocessor)
    last = int(data.end[fold.train].max())
    m = data.matrix
    raw = WindowPreprocessor.raw_numbers(m.counts[:last + 1], np.repeat(m.totals[:last + 1, None], m.counts.shape[1], 1))
    np.testing.assert_allclose(pre.mean, raw.reshape(-1, 6).mean(0), rtol=1e-9)
    everything = data.preprocessor.fit(m.counts.reshape(-1, 4), np.repeat(m.totals, m.counts.shape[1]))
    assert not np.allclose(pre.mean, everything.mean)  # the later days would have moved them


def test_labels_are_the_terciles_the_metrics_compute(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        windows = read_windows(con, labelled=True)
    assert np.array_equal(tercile_classes(windows["label_share"], windows["window_end"]), windows["label_trend"])


def test_window_preprocessor_batched_equals_record_by_record_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    totals = rng.integers(0, 20, (3, 60)).astype(float)
    counts = np.stack([rng.binomial(totals.astype(int), 0.3), rng.integers(0, 9, (3, 60)),
                       rng.integers(0, 9, (3, 60)), rng.integers(0, 9, (3, 60))], -1).astype(float)
    text_mask = (rng.random((3, 60)) < 0.5).astype(np.float32)
    text = rng.normal(size=(3, 60, 8)).astype(np.float32) * text_mask[..., None]
    pre = WindowPreprocessor(text_dim=8, image_dim=5).fit(counts.reshape(-1, 4), totals.reshape(-1))
    batched = pre.arrays(counts, totals, text, text_mask)
    one = pre.encode([{"counts": counts[i], "totals": totals[i], "text": text[i], "text_mask": text_mask[i]}
                      for i in range(3)])
    for name in pre.input_names:
        np.testing.assert_allclose(one[name], batched[name], rtol=1e-6, err_msg=name)
    assert batched["image"].shape == (3, 60, 5) and not batched["image_mask"].any()
    np.testing.assert_allclose(batched["numbers"].reshape(-1, 6).mean(0), 0, atol=1e-5)  # fitted on these days
    persistence = counts[:, -30:, 0].sum(1) / totals[:, -30:].sum(1)
    np.testing.assert_allclose(batched["summary"][:, 0], persistence, rtol=1e-6)
    np.testing.assert_allclose(batched["summary"][:, 1], counts[..., 0].sum(1) / totals.sum(1), rtol=1e-6)
    pre.save(tmp_path)
    assert load_preprocessor(tmp_path) == pre
    short = pre.encode([{"counts": counts[0, -20:], "totals": totals[0, -20:]}])  # left-padded with empty days
    assert short["numbers"].shape == (1, 60, 6) and short["summary"][0, 0] == pytest.approx(
        counts[0, -20:, 0].sum() / totals[0, -20:].sum())
    with pytest.raises(ValueError, match=r"counts must be \[20, 4\]"):
        pre.encode([{"counts": counts[0, -20:, :3], "totals": totals[0, -20:]}])
    with pytest.raises(ValueError, match="text must be"):
        pre.arrays(counts, totals, text[..., :4], text_mask)


def test_forecast_metrics_on_hand_computed_cases() -> None:
    y = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    pred = [0.1, 0.3, 0.2, 0.4, 0.6, 0.5]  # group a: ranks 1 3 2 → rho 0.5; group b: rho 0.5
    groups = ["a", "a", "a", "b", "b", "b"]
    out = spearman_by_group(y, pred, groups)
    assert out["groups"] == {"a": pytest.approx(0.5), "b": pytest.approx(0.5)} and out["mean"] == pytest.approx(0.5)
    assert spearman_by_group([1, 1, 1], [1, 2, 3], ["x"] * 3)["skipped"] == 1  # constant truth: no correlation
    figures = forecast_metrics(y, pred, [1, 0, -1, 1, 0, -1], [1, 0, -1, 1, -1, 0], groups=groups)
    assert figures["mae"] == pytest.approx(0.4 / 6)
    assert figures["trend_accuracy"] == pytest.approx(4 / 6)
    assert figures["trend_macro_f1"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert tercile_classes([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], ["m"] * 6).tolist() == [-1, -1, 0, 0, 1, 1]
    assert tercile_classes([0, 0, 0, 1, 1, 1], ["m"] * 6).tolist() == [0] * 6  # strictly above / below, as the SQL
    assert interval_coverage([1, 2, 3, 4], [0, 2.5, 2, 5], [1, 3, 4, 6]) == 0.5
    # with items, each group ranks the items' means: x (0.1, 0.3), y (0.2, 0.2), z (0.4, 0.5) → rho 0.5
    by_item = forecast_metrics([0.1, 0.1, 0.2, 0.4], [0.2, 0.4, 0.2, 0.5], [0] * 4, [0] * 4, groups=["a"] * 4,
                               items=["x", "x", "y", "z"])
    assert by_item["spearman"] == pytest.approx(0.5)


def test_fewer_than_three_categories_are_refused(tmp_path: Path) -> None:
    from emopulse.training.trend.train import prepare_data, profile_config

    posts, texts = write_trend_posts(tmp_path / "data", days=120, categories=2, per_day=5, seed=1)
    settings = Settings(home=tmp_path / "home")
    import_posts(settings, [posts, texts], kind="mkt")
    with duckdb.connect(str(settings.database), read_only=True) as con, \
            pytest.raises(ValueError, match="at least 3 categories"):
        prepare_data(con, profile_config("light"))
