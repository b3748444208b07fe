"""`predict_csv`: every input row comes out, with its columns, pred_1..5 and score_1..5; empty and
unreadable rows get empty predictions and are counted, never a crash."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from emopulse.ingest import strip_tokens
from emopulse.serving import EmojiScorer, export_and_register, predict_csv
from emopulse.training.emoji_align.train import TrainResult
from emopulse.warehouse import Warehouse


@pytest.fixture(scope="module")
def scorer(tmp_path_factory, trained: TrainResult) -> EmojiScorer:
    home = tmp_path_factory.mktemp("predict-home")
    with Warehouse.open(home / "warehouse.duckdb", command="test") as wh:
        record = export_and_register(wh, trained, artifacts_root=home)
    return EmojiScorer.load(record, device="cpu")


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        return list(csv.DictReader(f))


def test_predictions_keep_the_input_columns_and_count_empty_and_unreadable_rows(tmp_path, scorer) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(
        "\ufeffid,text,likes\n"
        "1,狗头保命[doge],3\n"               # the emote token is removed before scoring
        "2,,0\n"                            # empty
        "3,[doge][笑哭],1\n"                 # nothing but emotes: empty after cleaning
        "4,\"哈哈哈, 好笑\",7\n"               # quoted comma
        "5,too,many,fields,here\n".encode()  # unreadable: wrong number of fields
        + b"6,\xff\xfe bad bytes,2\n"        # unreadable: not UTF-8
        + "7,好漂亮啊,9\n".encode())
    summary = predict_csv(scorer, src, tmp_path / "out.csv", text_col="text", clean=strip_tokens)
    assert (summary.rows, summary.scored, summary.empty, summary.unreadable) == (7, 3, 2, 2)
    out = _read(tmp_path / "out.csv")
    assert list(out[0]) == ["id", "text", "likes", *(f"pred_{i}" for i in range(1, 6)),
                            *(f"score_{i}" for i in range(1, 6))]
    assert [r["id"] for r in out] == ["1", "2", "3", "4", "5", "6", "7"]
    assert out[0]["text"] == "狗头保命[doge]" and out[3]["text"] == "哈哈哈, 好笑"  # input kept as it was
    assert out[0]["pred_1"] == "[doge]" and out[3]["pred_1"] == "[笑哭]" and out[6]["pred_1"] == "[星星眼]"
    for row in (out[1], out[2], out[4], out[5]):
        assert all(row[f"pred_{i}"] == row[f"score_{i}"] == "" for i in range(1, 6))
    scores = [float(out[0][f"score_{i}"]) for i in range(1, 6)]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert all(p.startswith("[") and p.endswith("]") for p in (out[0][f"pred_{i}"] for i in range(1, 6)))
    # the undecodable row is written back byte for byte
    assert b"\xff\xfe bad bytes" in (tmp_path / "out.csv").read_bytes()


def test_emote_tokens_do_not_change_the_ranking(tmp_path, scorer) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text\n围观吃瓜[doge][doge]\n围观吃瓜\n", encoding="utf-8")
    predict_csv(scorer, src, tmp_path / "out.csv", text_col="text", clean=strip_tokens)
    a, b = _read(tmp_path / "out.csv")
    assert [a[f"pred_{i}"] for i in range(1, 6)] == [b[f"pred_{i}"] for i in range(1, 6)]


def test_a_missing_text_column_names_the_file_and_the_columns(tmp_path, scorer) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id,content\n1,哈哈\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"in\.csv: no column 'text'; the columns are \['id', 'content'\]"):
        predict_csv(scorer, src, tmp_path / "out.csv", text_col="text")
