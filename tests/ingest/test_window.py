"""Which comments a pass keeps (`Window.clip`) and Asia/Shanghai day boundaries."""

from __future__ import annotations

from datetime import date

import pytest

from emopulse.ingest import Comment, Mark, Window, day_start, shanghai_time


def c(rpid: int, ctime: int, *, root: int = 0, source: str = "api:main") -> Comment:
    return Comment(rpid=rpid, message="m", sentence="m", source=source, root=root, ctime=ctime)


PAGE = [
    c(1, 10, source="api:top"), c(2, 11, root=1, source="api:top"),  # pinned, old
    c(90, 900), c(91, 950, root=90),
    c(80, 800),
    c(70, 700), c(71, 990, root=70),
    c(60, 600),
]


def test_no_window_keeps_everything():
    assert Window().clip(PAGE) == (PAGE, None)


def test_since_drops_older_roots_with_their_previews_and_ends_the_listing():
    kept, end = Window(since=750).clip(PAGE)
    assert [x.rpid for x in kept] == [90, 91, 80] and end == "since"


def test_a_pinned_reply_never_ends_a_pass_but_is_dropped_when_too_old():
    kept, end = Window(stop=Mark(5, 1)).clip(PAGE)
    assert end is None and kept == PAGE  # the pinned root (rpid 1, ctime 10) is not "known"
    kept, end = Window(since=20).clip(PAGE)
    assert [x.rpid for x in kept] == [90, 91, 80, 70, 71, 60] and end is None


def test_reaching_the_newest_stored_root_ends_the_pass_after_this_page():
    kept, end = Window(stop=Mark(800, 80)).clip(PAGE)
    assert end == "known" and kept == PAGE  # the page is kept whole: its known rows refresh
    assert Window(stop=Mark(800, 79)).clip(PAGE)[1] == "known"  # (800, 80) is newer: passed
    assert Window(stop=Mark(590, 59)).clip(PAGE)[1] is None


def test_since_cuts_the_page_even_after_the_stored_root_is_reached():
    kept, end = Window(stop=Mark(900, 90), since=650).clip(PAGE)
    assert [x.rpid for x in kept] == [90, 91, 80, 70, 71] and end == "since"


def test_days_start_at_midnight_in_asia_shanghai():
    assert day_start("2019-03-14") == 1552492800  # 2019-03-13T16:00:00Z
    assert day_start(date(2024, 1, 1)) == 1704038400
    assert shanghai_time(1552492800).isoformat() == "2019-03-14T00:00:00+08:00"
    with pytest.raises(ValueError, match="not a date"):
        day_start("14/03/2019")
