"""Daily category stats and 60-day trend windows: gaps, month arithmetic, terciles, increments."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from emopulse.warehouse import Warehouse
from emopulse.warehouse.windows import refresh_windows, target_month
from post_builders import add, table

D0 = date(2024, 1, 1)


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def windows(wh: Warehouse, where: str = "TRUE") -> dict[tuple[date, int], tuple]:
    rows = wh.con.execute(
        "SELECT window_end, category, posts_60d, likes_60d, collects_60d, comments_60d, daily_posts, "
        f"daily_likes, target_month, label_share, label_trend FROM trend_windows WHERE {where}"
    ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def test_a_window_with_gaps_counts_missing_days_as_zero(wh: Warehouse) -> None:
    days = add(wh, [
        ("p1", day(0), [1, 1], 10),   # two images in category 1: the post counts once
        ("p2", day(9), [1, 2], 20),   # in both its categories
        ("p3", day(65), [2], 30),
    ])
    refresh_windows(wh, days)
    assert table(wh, "daily_category_stats", "day, category") == [
        (day(0), 1, 1, 10, 5, 1), (day(9), 1, 1, 20, 10, 1), (day(9), 2, 1, 20, 10, 1), (day(65), 2, 1, 30, 15, 1)]
    got = windows(wh)
    assert sorted({end for end, _ in got}) == [day(n) for n in range(59, 66)]  # 60 days of history
    assert len(got) == 7 * 2  # every known category on every such day

    posts_60d, likes_60d, collects_60d, comments_60d, daily_posts, daily_likes, *_ = got[(day(59), 1)]
    assert (posts_60d, likes_60d, collects_60d, comments_60d) == (2, 30, 15, 2)
    assert len(daily_posts) == 60 and daily_posts[0] == 1 and daily_posts[9] == 1 and sum(daily_posts) == 2
    assert daily_likes == [10] + [0] * 8 + [20] + [0] * 50  # oldest first, gaps as zeros
    assert got[(day(60), 1)][4] == [0] * 8 + [1] + [0] * 51  # day 0 left the window
    assert got[(day(65), 2)][4] == [0] * 3 + [1] + [0] * 55 + [1]
    assert got[(day(65), 1)][0] == 1


@pytest.mark.parametrize(("end", "target"), [
    (date(2023, 12, 10), date(2024, 2, 1)),
    (date(2023, 11, 30), date(2024, 1, 1)),
    (date(2024, 12, 31), date(2025, 2, 1)),
    (date(2023, 1, 31), date(2023, 3, 1)),
])
def test_target_month_is_two_calendar_months_on_year_aware(end: date, target: date) -> None:
    assert target_month(end) == target


def test_windows_ending_in_december_are_labelled_by_february_of_the_next_year(wh: Warehouse) -> None:
    posts = [(f"a{i}", date(2023, 2, 1 + i), [7], 1) for i in range(10)]  # last year's February: all 7
    posts += [(f"b{i}", date(2023, 10, 1) + timedelta(days=i), [7 if i % 2 else 8], 1) for i in range(160)]
    refresh_windows(wh, add(wh, posts))
    rows = wh.con.execute("SELECT DISTINCT month(window_end), target_month FROM trend_windows "
                          "WHERE year(window_end) = 2023 AND month(window_end) >= 11 ORDER BY 1").fetchall()
    assert rows == [(11, date(2024, 1, 1)), (12, date(2024, 2, 1))]
    dec = windows(wh, "window_end = DATE '2023-12-10'")
    feb = [p for p in posts if p[1].year == 2024 and p[1].month == 2]
    expected = sum(1 for p in feb if p[2] == [7]) / len(feb)  # not 1.0, as February 2023 would give
    assert dec[(date(2023, 12, 10), 7)][6:8] == (date(2024, 2, 1), pytest.approx(expected))
    assert 0.4 < expected < 0.6


def tercile_posts() -> list[tuple[str, date, list[int], int]]:
    """March 2024: 10 posts; category shares 1: .5, 2: .3, 3: .2, 4: .1, 5 and 6: none."""
    march = date(2024, 3, 10)
    return [
        ("early5", date(2023, 11, 1), [5], 1), ("early6", date(2023, 11, 2), [6], 1),
        *[(f"c1-{i}", march, [1], 1) for i in range(4)],
        ("c12", march, [1, 2], 1), ("c2-a", march, [2], 1), ("c2-b", march, [2], 1),
        ("c3", march, [3], 1), ("c34", march, [3, 4], 1), ("none", march, [], 1),
    ]


def test_tercile_labels_match_a_hand_computed_example(wh: Warehouse) -> None:
    refresh_windows(wh, add(wh, [*tercile_posts(), ("april", date(2024, 4, 2), [1], 1)]))
    got = windows(wh, "window_end = DATE '2024-01-15'")
    # shares over all six known categories: sorted [0, 0, .1, .2, .3, .5];
    # quantile_cont 1/3 at position 5/3: 0 + (.1 - 0) * 2/3 = .0667; 2/3 at 10/3: .2 + (.3 - .2) / 3 = .2333
    expected = {1: (0.5, 1), 2: (0.3, 1), 3: (0.2, 0), 4: (0.1, 0), 5: (0.0, -1), 6: (0.0, -1)}
    assert {c: (v[6], v[7], v[8]) for (_, c), v in got.items()} == {
        c: (date(2024, 3, 1), pytest.approx(share), trend) for c, (share, trend) in expected.items()}


def test_labels_are_null_until_the_target_month_is_complete(wh: Warehouse) -> None:
    refresh_windows(wh, add(wh, tercile_posts()))
    assert {v[7] for v in windows(wh, "window_end = DATE '2024-01-15'").values()} == {None}  # no post on 31 March
    step = refresh_windows(wh, add(wh, [("last", date(2024, 3, 31), [9], 1)]))
    # a new category: every window gets a row for it, so everything is rebuilt
    assert step.full
    labels = {c: v[8] for (_, c), v in windows(wh, "window_end = DATE '2024-01-15'").items()}
    assert labels[1] == 1 and labels[9] in (-1, 0) and None not in labels.values()
    assert windows(wh, "window_end = DATE '2024-02-15'")[(date(2024, 2, 15), 1)][7] is None
    step = refresh_windows(wh, add(wh, [("april", date(2024, 4, 30), [1], 1)]))
    # April is complete now: the windows ending in February (29 days, 7 categories) get labels
    assert not step.full and step.labels_updated == 29 * 7
    assert windows(wh, "window_end = DATE '2024-02-15'")[(date(2024, 2, 15), 1)][7] == pytest.approx(1.0)


def random_posts(rng: random.Random, n: int, first: date, days: int, prefix: str) -> list[tuple]:
    return [(f"{prefix}{i}", first + timedelta(days=rng.randrange(days)),
             rng.sample(range(5), rng.randint(1, 2)), rng.randrange(100)) for i in range(n)]


def test_incremental_refresh_equals_a_full_rebuild_and_touches_only_its_days(wh: Warehouse) -> None:
    rng = random.Random(4)
    refresh_windows(wh, add(wh, random_posts(rng, 400, date(2023, 9, 1), 150, "a")))
    n_windows = len(table(wh, "trend_windows", "window_end, category"))

    new_day = date(2023, 9, 1) + timedelta(days=150)  # the next day
    step = refresh_windows(wh, add(wh, [(f"n{i}", new_day, [i % 5], 7) for i in range(20)]))
    assert not step.full and step.days_changed == 1
    assert step.windows_written == 5  # only the new day's windows: one per category
    backfill = date(2023, 12, 1)  # a late file for a past day
    step = refresh_windows(wh, add(wh, [("late", backfill, [3], 1_000)]))
    assert not step.full and step.days_changed == 1
    assert step.windows_written == 60 * 5  # the 60 windows that contain that day
    incremental = table(wh, "trend_windows", "window_end, category")
    assert len(incremental) == n_windows + 5

    refresh_windows(wh)  # from scratch
    assert table(wh, "trend_windows", "window_end, category") == incremental
