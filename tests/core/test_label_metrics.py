"""Per-label precision, recall, F1, macro-F1 and the confusion matrix, from real tallies of answers."""

from __future__ import annotations

import pytest

from fine_tuning.core.label_metrics import answers_outside, macro_f1, per_label_metrics
from fine_tuning.core.score_tables import confusion_matrices, confusion_matrix_table, per_label_table
from fine_tuning.core.scoring import NO_ANSWER, ModelScore

LABELS = ["manga", "superhero", "memoir"]
# (true, answer) for ten prompts: manga 4 (3 right, 1 as superhero), superhero 4 (2 right, 1 as manga,
# 1 without an answer), memoir 2 (1 right, 1 as "horror", outside the label set).
ANSWERS = [
    ("manga", "manga"), ("manga", "manga"), ("manga", "manga"), ("manga", "superhero"),
    ("superhero", "superhero"), ("superhero", "superhero"), ("superhero", "manga"), ("superhero", None),
    ("memoir", "memoir"), ("memoir", "horror"),
]


def scored(answers: list[tuple[str, str | None]], model: str = "m") -> ModelScore:
    score = ModelScore(model)
    for index, (truth, answer) in enumerate(answers):
        score.record(f"book-{index}", truth, answer)
    return score


def test_precision_recall_f1_and_support_per_label() -> None:
    manga, superhero, memoir = per_label_metrics(scored(ANSWERS), LABELS)
    assert (manga.support, manga.predicted, manga.correct) == (4, 4, 3)
    assert (manga.precision, manga.recall, manga.f1) == (0.75, 0.75, 0.75)
    assert (superhero.support, superhero.predicted, superhero.correct) == (4, 3, 2)
    assert superhero.precision == pytest.approx(2 / 3) and superhero.recall == 0.5
    assert superhero.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert (memoir.support, memoir.predicted, memoir.correct) == (2, 1, 1)
    assert (memoir.precision, memoir.recall) == (1.0, 0.5) and memoir.f1 == pytest.approx(2 / 3)


def test_macro_f1_weighs_every_label_alike_and_skips_labels_absent_from_prompts_and_answers() -> None:
    metrics = per_label_metrics(scored(ANSWERS), [*LABELS, "western"])
    assert metrics[-1].support == metrics[-1].predicted == 0
    expected = (0.75 + 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5) + 2 / 3) / 3
    assert macro_f1(metrics) == pytest.approx(expected)
    # A model that always answers the majority label: 40% accuracy, but macro-F1 far lower.
    majority = per_label_metrics(scored([(truth, "manga") for truth, _ in ANSWERS]), LABELS)
    assert majority[0].recall == 1.0 and majority[1].f1 == majority[2].f1 == 0.0
    assert macro_f1(majority) == pytest.approx((2 * 0.4 * 1.0 / 1.4) / 3)
    assert macro_f1([]) == 0.0


def test_the_confusion_matrix_has_every_answer_including_those_outside_the_label_set() -> None:
    score = scored(ANSWERS)
    assert answers_outside(score, LABELS) == ["horror", NO_ANSWER]
    table = confusion_matrix_table(score, LABELS).splitlines()
    assert table[0] == "| true \\ answer | manga | superhero | memoir | horror | <no answer> | total |"
    assert table[2] == "| manga | **3** | 1 |  |  |  | 4 |"
    assert table[3] == "| superhero | 1 | **2** |  |  | 1 | 4 |"
    assert table[4] == "| memoir |  |  | **1** | 1 |  | 2 |"
    assert len(table) == 5


def test_a_score_read_back_from_json_gives_the_same_tables() -> None:
    score = scored(ANSWERS)
    again = ModelScore.from_json(score.to_json())
    assert again.outcomes == score.outcomes and sum(again.outcomes.values()) == score.correct == 6
    assert confusion_matrix_table(again, LABELS) == confusion_matrix_table(score, LABELS)
    assert per_label_table([("challenger", again)], LABELS) == per_label_table([("challenger", score)], LABELS)


def test_the_per_label_table_puts_models_side_by_side_with_macro_f1_and_accuracy() -> None:
    challenger, champion = scored(ANSWERS, "new"), scored([(truth, truth) for truth, _ in ANSWERS], "old")
    lines = per_label_table([("challenger", challenger), ("production", champion)], LABELS).splitlines()
    assert lines[0] == ("| label | support | challenger P | challenger R | challenger F1 "
                        "| production P | production R | production F1 |")
    assert lines[2] == "| manga | 4 | 0.75 | 0.75 | 0.75 | 1.00 | 1.00 | 1.00 |"
    assert lines[-2].startswith("| **macro-F1** |") and lines[-2].endswith("| **1.000** |")
    assert lines[-1] == "| **accuracy** | 10 |  |  | **60.0%** |  |  | **100.0%** |"
    both = confusion_matrices([("challenger", challenger), ("production model", champion)], LABELS)
    assert both.index("**challenger** `new` (60.0% right)") < both.index("**production model** `old` (100.0% right)")
