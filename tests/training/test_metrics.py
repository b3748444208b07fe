from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emopulse.training.data import emote_comments
from emopulse.training.metrics import main_label, majority_scores, ranking_metrics, topk_accuracy


def test_main_label_is_the_most_frequent_and_ties_go_to_the_first() -> None:
    assert main_label(["[a]", "[b]"], [1, 2]) == "[b]"
    assert main_label(["[b]", "[a]"], [1, 1]) == "[b]"
    assert main_label(["[a]", "[b]", "[b]"]) == "[b]"


def test_strict_and_any_match_differ_on_a_hand_made_example() -> None:
    # labels x=0, y=1, z=2.  A: emotes {x, y}, main y.  B: emotes {x, y}, main x.  C: {z}, main z.
    scores = np.array([[0.9, 0.5, 0.1],   # A ranks x, y, z: strict miss@1, any hit@1
                       [0.1, 0.5, 0.9],   # B ranks z, y, x: both miss@1; any hit@2, strict miss@2
                       [0.2, 0.3, 0.5]])  # C ranks z first: both hit
    main = [1, 0, 2]
    label_sets = [[0, 1], [0, 1], [2]]
    got = ranking_metrics(scores, main=main, label_sets=label_sets, ks=(1, 2, 3))
    assert got["top1_strict"] == pytest.approx(1 / 3)
    assert got["top1_any"] == pytest.approx(2 / 3)
    assert got["top2_strict"] == pytest.approx(2 / 3)
    assert got["top2_any"] == pytest.approx(1.0)
    assert got["top3_strict"] == got["top3_any"] == pytest.approx(1.0)


def test_topk_breaks_score_ties_towards_the_lower_index() -> None:
    assert topk_accuracy(np.zeros((1, 3)), [[0]], k=1) == 1.0
    assert topk_accuracy(np.zeros((1, 3)), [[2]], k=2) == 0.0


def test_majority_baseline_ranks_by_training_frequency() -> None:
    scores = majority_scores([2, 2, 1, 2, 1, 0], num_labels=4, n=2)
    assert scores.shape == (2, 4)
    got = ranking_metrics(scores, main=[2, 1], label_sets=[[2], [1, 3]], ks=(1, 2))
    assert got == {"top1_strict": 0.5, "top1_any": 0.5, "top2_strict": 1.0, "top2_any": 1.0}


def test_emote_comments_collapses_rows_using_the_message_for_counts_and_order() -> None:
    rows = pd.DataFrame({
        "rpid": [7, 7, 8, 8],
        "emoji_alt": ["[x]", "[y]", "[x]", "[y]"],
        "message": ["a[x]b[y][y]", "a[x]b[y][y]", "[y]hi[x]", "[y]hi[x]"],
        "sentence": ["ab", "ab", "hi", "hi"],
    })
    comments = emote_comments(rows).set_index("id")
    assert comments.loc["7", "labels"] == ["[x]", "[y]"]
    assert comments.loc["7", "counts"] == [1, 2]
    assert comments.loc["7", "main"] == "[y]"          # most frequent
    assert comments.loc["8", "labels"] == ["[y]", "[x]"]
    assert comments.loc["8", "main"] == "[y]"          # tie: the first in the message


def test_emote_comments_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="emoji_alt"):
        emote_comments(pd.DataFrame({"rpid": [1], "sentence": ["x"]}))
