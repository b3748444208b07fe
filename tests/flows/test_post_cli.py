"""`emopulse import xhs|mkt`, `cluster-images` and `windows` from the command line."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from emopulse.flows.cli import app
from PIL import Image, ImageDraw
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.parametrize("sub", [["import", "xhs"], ["import", "mkt"], ["inbox"], ["cluster-images"], ["windows"]])
def test_new_commands_have_help(sub: list[str]) -> None:
    result = runner.invoke(app, [*sub, "--help"])
    assert result.exit_code == 0, result.output
    assert "--home" in result.output


def note(note_id: str, images: int = 0, **fields) -> dict:
    return {"note_id": note_id, "type": "normal", "title": "t", "desc": "d", "time": 1_712_457_083_000,
            "liked_count": "1", "collected_count": "2", "comment_count": "3", "share_count": "4",
            "image_list": ",".join(f"https://img.invalid/{note_id}/{i}.jpg" for i in range(images)),
            "tag_list": "", **fields}


def test_import_xhs_folder_reports_a_refused_file_and_loads_the_rest(tmp_path: Path) -> None:
    data = tmp_path / "json"
    data.mkdir()
    (data / "a.json").write_text(json.dumps([note("6612057b000000001a00ce44")]), encoding="utf-8")
    (data / "b.jsonl").write_text("this is not json\n", encoding="utf-8")
    home = tmp_path / "home"
    result = runner.invoke(app, ["import", "xhs", str(data), "--home", str(home)])
    assert result.exit_code == 1
    files = json.loads(result.stdout)["files"]
    assert [(Path(f["path"]).name, f["posts"], bool(f["error"])) for f in files] == [
        ("a.json", 1, False), ("b.jsonl", 0, True)]
    assert "not JSON" in files[1]["error"] and "1 of 2 files not imported" in result.stderr
    sql = "SELECT post_id, date_resolution FROM posts"
    out = runner.invoke(app, ["sql", sql, "--format", "json", "--home", str(home)])
    assert json.loads(out.stdout) == [{"post_id": "6612057b000000001a00ce44", "date_resolution": "publish time given"}]


def test_import_mkt_then_query_trend_windows(tmp_path: Path) -> None:
    csv = tmp_path / "alldata.csv"
    start = date(2024, 1, 1)
    rows = [f"u,65920000000000000000{i:04d},{i % 3},{(start + timedelta(days=i)).strftime('%m-%d')},1万,{i}"
            for i in range(130)]
    csv.write_text("poster_id,post_id,nums_category_img,post_date,post_like,post_collect\n" + "\n".join(rows) + "\n",
                   encoding="utf-8")
    home = tmp_path / "home"
    result = runner.invoke(app, ["import", "mkt", str(csv), "--home", str(home)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files"][0]["dates"] == {"MM-DD, year of the note id": 130}
    assert summary["windows"]["windows_written"] == (130 - 59) * 3
    sql = ("SELECT window_end, category, posts_60d, len(daily_posts) AS n, label_share FROM trend_windows "
           "WHERE window_end = DATE '2024-02-29' ORDER BY category")
    got = json.loads(runner.invoke(app, ["sql", sql, "--format", "json", "--home", str(home)]).stdout)
    # 60 days, one post a day cycling through 3 categories; April (complete: data to 9 May): 10 each of 30
    assert [(r["category"], r["posts_60d"], r["n"]) for r in got] == [(0, 20, 60), (1, 20, 60), (2, 20, 60)]
    assert [round(r["label_share"], 4) for r in got] == [round(10 / 30, 4), round(10 / 30, 4), round(10 / 30, 4)]
    rebuilt = runner.invoke(app, ["windows", "--home", str(home)])
    assert json.loads(rebuilt.stdout)["windows_written"] == (130 - 59) * 3


def picture(path: Path, colour: tuple[int, int, int], kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (48, 48), "white")
    draw = ImageDraw.Draw(image)
    (draw.ellipse if kind == "circle" else draw.rectangle)((6, 6, 42, 42), fill=colour)
    image.save(path)


def test_cluster_images_sets_categories_and_keeps_ids(tmp_path: Path) -> None:
    data = tmp_path / "xhs"
    ids = [f"6612057b000000001a00ce4{i}" for i in range(4)]
    (data / "json").mkdir(parents=True)
    (data / "json" / "notes.json").write_text(json.dumps([note(i, images=2) for i in ids]), encoding="utf-8")
    for n, note_id in enumerate(ids):  # notes 0, 1 show red circles; notes 2, 3 blue squares
        for i in range(2):
            picture(data / "images" / note_id / f"{i}.png", (210, 20 + 10 * i, 20) if n < 2 else (20, 20, 210 - 10 * i),
                    "circle" if n < 2 else "square")
    home = tmp_path / "home"
    assert runner.invoke(app, ["import", "xhs", str(data / "json"), "--home", str(home)]).exit_code == 0
    first = runner.invoke(app, ["cluster-images", "--k", "2", "--home", str(home)])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["embedded"] == 8
    sql = "SELECT post_id, image_index, category, category_source FROM post_images ORDER BY ALL"
    before = json.loads(runner.invoke(app, ["sql", sql, "--format", "json", "--home", str(home)]).stdout)
    by_note = {r["post_id"]: set() for r in before}
    for r in before:
        by_note[r["post_id"]].add(r["category"])
    assert by_note[ids[0]] == by_note[ids[1]] != by_note[ids[2]] == by_note[ids[3]]
    assert {r["category_source"] for r in before} == {"kmeans:efficientnet-lite0"}

    again = runner.invoke(app, ["cluster-images", "--k", "2", "--seed", "5", "--home", str(home)])
    assert json.loads(again.stdout)["embedded"] == 0  # stored embeddings are reused
    after = json.loads(runner.invoke(app, ["sql", sql, "--format", "json", "--home", str(home)]).stdout)
    assert after == before  # the same clusters keep their ids

    too_many = runner.invoke(app, ["cluster-images", "--k", "50", "--home", str(home)])
    assert too_many.exit_code == 1 and "50 image clusters need at least 50 embedded images" in too_many.stderr
