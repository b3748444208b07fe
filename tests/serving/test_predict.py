"""`predict_csv`: every input row comes out, with its columns and the head's; the model's own
preprocessor cleans the text (an emote model drops `[emote]` tokens by default); empty and
unreadable rows get empty predictions and are counted, never a crash."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from emopulse.serving import Scorer, load_scorer, predict_csv
from emopulse.training.preprocess import TextPreprocessor


@pytest.fixture(scope="module")
def scorers(register_models) -> dict[str, Scorer]:
    records = register_models(("ranker", "multilabel", "regressor"), home="predict-home")
    return {name: load_scorer(record, device="cpu", variant="fp32") for name, record in records.items()}


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        return list(csv.DictReader(f))


def test_predictions_keep_the_input_columns_and_count_empty_and_unreadable_rows(tmp_path, scorers) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(
        "\ufeffid,text,likes\n"
        "1,狗头保命[doge],3\n"               # the emote token is removed before scoring
        "2,,0\n"                            # empty
        "3,[doge][笑哭],1\n"                 # nothing but emotes: empty after the model's own cleaning
        "4,\"哈哈哈, 好笑\",7\n"               # quoted comma
        "5,too,many,fields,here\n".encode()  # unreadable: wrong number of fields
        + b"6,\xff\xfe bad bytes,2\n"        # unreadable: not UTF-8
        + "7,好漂亮啊,9\n".encode())
    summary = predict_csv(scorers["ranker"], src, tmp_path / "out.csv", text_col="text")
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
    assert b"\xff\xfe bad bytes" in (tmp_path / "out.csv").read_bytes()  # written back byte for byte


def test_emote_tokens_are_stripped_by_default_for_an_emote_model(tmp_path, scorers) -> None:
    scorer = scorers["ranker"]
    assert scorer.preprocessor.clean == "strip_emotes"
    with_tokens, without = "围观吃瓜[doge][doge][笑哭]", "围观吃瓜"
    # left in, the tokens move this model's scores by more than the CSV's 6 decimals: the
    # comparison below fails without the cleaning
    raw = dataclasses.replace(scorer, preprocessor=TextPreprocessor(scorer.preprocessor.tokenizer, clean="none"))
    moved = raw.predict([with_tokens, without]).values
    assert np.abs(moved[0] - moved[1]).max() > 1e-5
    src = tmp_path / "in.csv"
    src.write_text(f"text\n{with_tokens}\n{without}\n", encoding="utf-8")
    predict_csv(scorer, src, tmp_path / "out.csv", text_col="text")
    a, b = _read(tmp_path / "out.csv")
    assert {k: v for k, v in a.items() if k != "text"} == {k: v for k, v in b.items() if k != "text"}
    assert a["pred_1"] == "[吃瓜]"


def test_a_multilabel_model_writes_every_label_and_those_on(tmp_path, scorers) -> None:
    scorer = scorers["multilabel"]
    src = tmp_path / "in.csv"
    src.write_text("text,id\n狗头保命,1\n,2\n", encoding="utf-8")
    summary = predict_csv(scorer, src, tmp_path / "out.csv", text_col="text")
    assert (summary.scored, summary.empty) == (1, 1)
    row, empty = _read(tmp_path / "out.csv")
    assert list(row) == ["text", "id", *(f"score_{label}" for label in scorer.labels), "labels_on"]
    intensities = np.array([float(row[f"score_{label}"]) for label in scorer.labels])
    on = [label for label, v, t in zip(scorer.labels, intensities, scorer.head.thresholds, strict=True) if v >= t]
    assert row["labels_on"].split(";") == on and "[doge]" in on
    assert all(v == "" for k, v in empty.items() if k != "id")


def test_a_sequence_model_takes_no_text_column(tmp_path, scorers) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text\nx\n", encoding="utf-8")
    with pytest.raises(ValueError, match="takes 'sequence' inputs, not a text column"):
        predict_csv(scorers["regressor"], src, tmp_path / "out.csv", text_col="text")


def test_a_missing_text_column_names_the_file_and_the_columns(tmp_path, scorers) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id,content\n1,哈哈\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"in\.csv: no column 'text'; the columns are \['id', 'content'\]"):
        predict_csv(scorers["ranker"], src, tmp_path / "out.csv", text_col="text")
