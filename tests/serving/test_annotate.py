"""EQN annotation (`emopulse annotate emotions`) and scoring with a quantised multi-label model:
a file, a folder with a broken file, empty and unreadable rows, a GBK file, a missing column, the
CLI; comments and posts scored into `predictions`, one row per label, only once."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from emopulse.flows.cli import app
from emopulse.serving import annotate_csv, annotate_files, load_scorer, score_model
from emopulse.serving.heads import energy_level
from emopulse.training.result import TrainResult
from emopulse.warehouse import Warehouse

runner = CliRunner()


@pytest.fixture(scope="module")
def eqn(multilabel: TrainResult) -> TrainResult:
    """The tiny multi-label model with the EQN quantisation, scoring comments and posts."""
    return dataclasses.replace(multilabel, name="tiny_eqn", head=dataclasses.replace(multilabel.head, quantize=True),
                               entity_kinds=("comment", "post"))


@pytest.fixture(scope="module")
def ranked_emotions(ranker: TrainResult) -> TrainResult:
    """An `emotions` model with a ranking head: not something annotation can read."""
    return dataclasses.replace(ranker, name="tiny_ranked_emotions", task="emotions")


@pytest.fixture(scope="module")
def registered(register_models) -> dict:
    return register_models(("ranked_emotions", "eqn"), home="annotate-home")  # eqn: the latest emotions model


@pytest.fixture(scope="module")
def scorer(registered):
    return load_scorer(registered["eqn"], device="cpu", variant="fp32")


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _energies(scorer, texts: list[str]) -> np.ndarray:
    return energy_level(scorer.predict(texts).values)


def test_a_file_keeps_its_rows_and_columns_and_gains_an_energy_per_label(tmp_path: Path, scorer) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(
        "\ufeffid,content,likes\n"
        "1,狗头保命,3\n"
        "2,,0\n"                          # empty
        "3,   ,0\n"                       # whitespace: empty
        "4,[doge][笑哭],1\n"               # nothing but emotes: empty after the model's own cleaning
        "5,\"哈哈哈, 好笑\",7\n"             # a quoted comma
        "6,too,many,fields\n".encode()    # unreadable: the wrong number of fields
        + b"7,\xff\xfe bad,2\n"           # unreadable: not UTF-8
        + "\n8,好漂亮啊,9\n".encode())     # a blank line (empty), then a text
    summary = annotate_files(scorer, src, tmp_path / "out.csv", text_col="content")
    assert (summary.mode, summary.files, summary.rows, summary.scored, summary.empty, summary.unreadable) == \
        ("file", 1, 9, 3, 4, 2)
    assert summary.model_id == scorer.model_id and summary.failed == [] and summary.rows_per_s > 0
    [done] = summary.annotated
    assert (done.encoding, done.output) == ("utf-8", str(tmp_path / "out.csv"))

    rows = _read(tmp_path / "out.csv")
    labels = list(scorer.labels)
    assert list(rows[0]) == ["id", "content", "likes", *(f"energy_{n}" for n in labels), "labels"]
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5", "6", "7", "", "8"]  # order and cells kept
    assert rows[4]["content"] == "哈哈哈, 好笑" and rows[0]["likes"] == "3" and rows[5]["content"] == "too"
    assert rows[6]["content"] == "\ufffd\ufffd bad"  # the file is UTF-8 even so

    scored = {0: "狗头保命", 4: "哈哈哈, 好笑", 8: "好漂亮啊"}
    want = _energies(scorer, list(scored.values()))
    thresholds = np.asarray(scorer.head.thresholds)
    for (i, _), energy in zip(scored.items(), want, strict=True):
        cells = [rows[i][f"energy_{n}"] for n in labels]
        assert [float(c) for c in cells] == energy.tolist()  # 10 × the quantised intensity
        assert all(0 <= float(c) <= 10 and len(c.partition(".")[2]) <= 1 for c in cells)
        assert rows[i]["labels"] == ";".join(n for n, e, t in zip(labels, energy, thresholds, strict=True)
                                             if e / 10 >= t - 1e-12)
    assert "[doge]" in rows[0]["labels"].split(";") and "[星星眼]" in rows[8]["labels"].split(";")
    for i in (1, 2, 3, 5, 6, 7):  # not scored: empty cells
        assert all(rows[i][f"energy_{n}"] == "" for n in labels) and rows[i]["labels"] == ""


def test_a_folder_annotates_every_csv_and_names_the_files_it_could_not_read(tmp_path: Path, scorer) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "b.csv").write_text("content\n哈哈哈\n加油冲鸭\n\n", encoding="utf-8")
    (src / "a.csv").write_text("content,n\n狗头保命,1\n", encoding="utf-8")
    (src / "broken.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")  # an image named .csv
    (src / "other.csv").write_text("text\n狗头保命\n", encoding="utf-8")  # no `content` column
    (src / "notes.txt").write_text("content\n不是 CSV\n", encoding="utf-8")  # not *.csv: left alone
    out = tmp_path / "out"
    summary = annotate_files(scorer, src, out, text_col="content")
    assert (summary.mode, summary.files, summary.rows, summary.scored, summary.empty) == ("directory", 2, 4, 3, 1)
    assert [Path(f.input).name for f in summary.annotated] == ["a.csv", "b.csv"]  # sorted
    assert [(Path(f["path"]).name, f["reason"]) for f in summary.failed] == [
        ("broken.csv", f"{src / 'broken.csv'}: not a text CSV (it holds NUL bytes)"),
        ("other.csv", f"{src / 'other.csv'}: no column 'content'; the columns are ['text']")]
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"]
    b = _read(out / "b.csv")
    assert [r["content"] for r in b] == ["哈哈哈", "加油冲鸭", ""]
    assert [float(b[0][f"energy_{n}"]) for n in scorer.labels] == _energies(scorer, ["哈哈哈"])[0].tolist()
    assert "[笑哭]" in b[0]["labels"].split(";") and b[2]["labels"] == ""
    assert _read(out / "a.csv")[0]["n"] == "1"

    again = annotate_files(scorer, out, tmp_path / "out2", text_col="content")  # annotated files: refused
    assert again.files == 0 and all("already has column(s) ['energy_[笑哭]'" in f["reason"] for f in again.failed)
    with pytest.raises(ValueError, match="the output folder is the input folder"):
        annotate_files(scorer, src, src, text_col="content")


def test_a_gbk_file_is_read_as_gb18030_and_written_as_utf8(tmp_path: Path, scorer) -> None:
    src = tmp_path / "gbk.csv"
    src.write_bytes("编号,评论\n1,狗头保命\n2,好漂亮啊\n".encode("gb18030"))
    done = annotate_csv(scorer, src, tmp_path / "out.csv", text_col="评论")
    assert (done.encoding, done.rows, done.scored) == ("gb18030", 2, 2)
    rows = _read(tmp_path / "out.csv")  # raises if it is not UTF-8
    assert [(r["编号"], r["评论"]) for r in rows] == [("1", "狗头保命"), ("2", "好漂亮啊")]
    want = _energies(scorer, ["狗头保命", "好漂亮啊"])
    assert [[float(r[f"energy_{n}"]) for n in scorer.labels] for r in rows] == want.tolist()
    assert "[doge]" in rows[0]["labels"].split(";")


def test_a_missing_text_column_names_it_and_the_columns_there_are(tmp_path: Path, scorer) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id,content\n1,哈哈哈\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"in\.csv: no column 'text'; the columns are \['id', 'content'\]"):
        annotate_files(scorer, src, tmp_path / "out.csv", text_col="text")
    assert not (tmp_path / "out.csv").exists()
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        annotate_files(scorer, tmp_path / "missing.csv", tmp_path / "out.csv", text_col="text")


def test_the_cli_annotates_with_the_latest_emotions_model_and_refuses_other_heads(tmp_path: Path, registered) -> None:
    home = registered["eqn"].home
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("content\n狗头保命\n\n", encoding="utf-8")
    result = runner.invoke(app, ["annotate", "emotions", "--input", str(src), "--text-col", "content",
                                 "--output", str(out), "--device", "cpu", "--home", str(home), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["model_id"] == registered["eqn"].model_id and (summary["rows"], summary["scored"]) == (2, 1)
    [row, _] = _read(out)
    assert "[doge]" in row["labels"].split(";") and 0 <= float(row["energy_[doge]"]) <= 10

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "good.csv").write_text("content\n哈哈哈\n", encoding="utf-8")
    (folder / "bad.csv").write_text("text\n哈哈哈\n", encoding="utf-8")
    result = runner.invoke(app, ["annotate", "emotions", "--input", str(folder), "--text-col", "content",
                                 "--output", str(tmp_path / "annotated"), "--home", str(home)])  # with bars
    assert result.exit_code == 1 and "1 of 2 files not annotated" in " ".join(result.output.split())
    assert json.loads(result.stdout[result.stdout.index("{"):])["files"] == 1
    assert (tmp_path / "annotated" / "good.csv").is_file()

    wrong = registered["ranked_emotions"].model_id
    result = runner.invoke(app, ["annotate", "emotions", "--input", str(src), "--text-col", "content",
                                 "--output", str(out), "--model-id", wrong, "--home", str(home), "-q"])
    assert result.exit_code == 1 and f"model {wrong} has a 'ranking' head" in " ".join(result.output.split())
    missing = runner.invoke(app, ["annotate", "emotions", "--input", str(src), "--text-col", "text",
                                  "--output", str(out), "--home", str(home), "-q"])
    assert missing.exit_code == 1 and "no column 'text'" in " ".join(missing.output.split())

    # `predict emotions` on the same model: the served intensities are the quantised ones
    result = runner.invoke(app, ["predict", "emotions", "--input", str(src), "--text-col", "content",
                                 "--output", str(tmp_path / "p.csv"), "--device", "cpu", "--home", str(home)])
    assert result.exit_code == 0, result.output
    first = _read(tmp_path / "p.csv")[0]
    scores = [float(first[f"score_{n}"]) for n in registered["eqn"].params["head"]["labels"]]
    assert all(round(s, 2) == s for s in scores) and "[doge]" in first["labels_on"].split(";")
    assert all(len(first[f"score_{n}"].partition(".")[2]) == 2 for n in registered["eqn"].params["head"]["labels"])


def _fill(wh: Warehouse, comments: pd.DataFrame) -> None:
    frame = comments[["rpid", "bvid", "message", "sentence"]].head(12).copy()
    frame.loc[frame.index[0], "sentence"] = ""  # nothing to score
    wh.con.register("c", frame)
    wh.con.execute("INSERT INTO comments (rpid, bvid, message, sentence) SELECT * FROM c")
    wh.con.unregister("c")
    wh.con.execute("INSERT INTO posts (post_id) VALUES ('p1'), ('p2'), ('p3'), ('p4')")
    wh.con.execute("INSERT INTO post_texts (post_id, text) VALUES ('p1', '今日穿搭 狗头保命'), "
                   "('p2', '好漂亮啊 好漂亮啊'), ('p3', '')")  # p3: empty, p4: no text row at all


def test_comments_and_posts_get_one_quantised_row_per_label_once(registered, comments: pd.DataFrame,
                                                                 scorer) -> None:
    record = registered["eqn"]
    labels = list(record.params["head"]["labels"])
    with Warehouse.open(record.home / "warehouse.duckdb", command="test") as wh:
        _fill(wh, comments)
        runs = score_model(wh, model=record.model_id, device="cpu", variant="fp32")
        assert [(r.entity_kind, r.entities, r.rows) for r in runs] == [
            ("comment", 11, 11 * len(labels)), ("post", 2, 2 * len(labels))]
        preds = wh.con.execute("SELECT * FROM predictions WHERE model_id = ? ORDER BY entity_kind, entity_id, rank",
                               [record.model_id]).df()
        per = preds.groupby(["entity_kind", "entity_id"])
        assert per.size().eq(len(labels)).all() and len(per) == 13
        assert all(sorted(g) == sorted(labels) for g in per["label"].apply(list))
        assert preds["score"].between(0, 1).all() and (preds["score"].round(2) == preds["score"]).all()
        assert all(r == list(range(1, len(labels) + 1)) for r in per["rank"].apply(list))
        assert per["score"].apply(lambda s: s.is_monotonic_decreasing).all()  # rank by score
        posts = preds[preds["entity_kind"] == "post"].pivot(index="entity_id", columns="label", values="score")
        want = scorer.predict(["今日穿搭 狗头保命", "好漂亮啊 好漂亮啊"]).values  # the post's text
        np.testing.assert_array_equal(posts.loc[["p1", "p2"], labels].to_numpy(), want)
        assert posts.loc["p1", "[doge]"] >= record.params["head"]["thresholds"][labels.index("[doge]")]

        again = score_model(wh, model=record.model_id, device="cpu", variant="fp32")
        assert [(r.entity_kind, r.entities, r.rows) for r in again] == [("comment", 0, 0), ("post", 0, 0)]
        assert wh.con.execute("SELECT count(*) FROM predictions WHERE model_id = ?",
                              [record.model_id]).fetchone()[0] == len(preds)


def test_a_stray_nul_costs_its_row_and_a_labels_column_of_the_input_stays(tmp_path: Path, scorer) -> None:
    src = tmp_path / "labelled.csv"
    body = "content,labels\n哈哈哈,joy\n" + "狗头\x00保命,anger\n" + "加油冲鸭,\n" * 200
    src.write_text(body, encoding="utf-8")
    out = tmp_path / "out.csv"
    summary = annotate_files(scorer, src, out, text_col="content")
    assert (summary.rows, summary.scored, summary.unreadable) == (202, 201, 1)
    rows = _read(out)
    assert list(rows[0])[-1] == "labels_predicted" and rows[0]["labels"] == "joy"  # the input's own, kept
    assert rows[1]["labels"] == "anger" and rows[1]["labels_predicted"] == ""  # the NUL row: not scored
    energy = _energies(scorer, ["哈哈哈"])[0]
    want = [n for n, e, t in zip(scorer.labels, energy, scorer.head.thresholds, strict=True) if e / 10 >= t - 1e-12]
    assert want and rows[0]["labels_predicted"] == ";".join(want)  # the model's labels, beside the input's
