"""Graders in OpenAI's JSON shape: validated field by field, and run on answers."""

from __future__ import annotations

from typing import Any

import pytest

from fine_tuning.core.graders import (
    GraderError,
    UnsupportedGrader,
    exact_match_grader,
    fill_template,
    run_grader,
    text_similarity,
    validate_grader,
)

SIMILAR = {"type": "text_similarity", "name": "sim", "input": "{{sample.output_text}}",
           "reference": "{{item.reference_answer}}", "evaluation_metric": "rouge_1"}
JUDGE = {"type": "score_model", "name": "judge", "model": "gpt-4o-mini", "range": [0, 10],
         "input": [{"role": "system", "content": "Score 0-10."}, {"role": "user", "content": "{{sample.output_text}}"}]}


@pytest.mark.parametrize(("operation", "sample", "reward"), [
    ("eq", "Horror", 0.0), ("eq", "horror", 1.0), ("ne", "Horror", 1.0), ("like", "very horror!", 1.0),
    ("like", "HORROR", 0.0), ("ilike", "It is HORROR", 1.0), ("ilike", "fantasy", 0.0),
])
def test_string_check_operations(operation: str, sample: str, reward: float) -> None:
    grader = {**exact_match_grader(), "operation": operation}
    assert run_grader(grader, sample, {"reference_answer": "horror"}).reward == reward


def test_templates_read_item_paths_and_the_sample_json() -> None:
    item = {"answer": {"labels": ["a", "b"]}, "n": 3}
    assert fill_template("{{ item.answer.labels.1 }}/{{item.n}}/{{item.missing}}", "x", item) == "b/3/"
    assert fill_template("{{sample.output_json.category}}", '{"category": "manga"}', {}) == "manga"
    assert fill_template("{{sample.output_json.category}}", "not json", {}) == ""


def test_multi_combines_named_graders_with_a_formula() -> None:
    grader = {"type": "multi", "name": "both", "graders": {"exact": exact_match_grader(), "sim": SIMILAR},
              "calculate_output": "max(exact, sim ^ 2) - 0 * abs(exact)"}
    run = run_grader(grader, "the horror book", {"reference_answer": "horror"})
    assert run.sub_rewards == {"exact": 0.0, "sim": pytest.approx(0.5)}
    assert run.reward == pytest.approx(0.25) and run.scores["both"] == pytest.approx(0.25)


def test_similarity_metrics_are_one_on_identity_and_zero_without_overlap() -> None:
    for metric in ("fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_l"):
        assert text_similarity("a b c d e", "a b c d e", metric) == pytest.approx(1.0)
        assert text_similarity("xyz", "abc", metric) == pytest.approx(0.0, abs=0.01)


@pytest.mark.parametrize(("grader", "param"), [
    ("not an object", "grader"),
    ({**exact_match_grader(), "type": "python"}, "grader.type"),
    ({k: v for k, v in exact_match_grader().items() if k != "reference"}, "grader.reference"),
    ({**exact_match_grader(), "operation": "contains"}, "grader.operation"),
    ({**exact_match_grader(), "name": ""}, "grader.name"),
    ({**exact_match_grader(), "extra": 1}, "grader.extra"),
    ({**exact_match_grader(), "input": "{{answer}}"}, "grader.input"),
    ({**SIMILAR, "evaluation_metric": "rouge_9"}, "grader.evaluation_metric"),
    ({**JUDGE, "range": [1, 0]}, "grader.range"),
    ({**JUDGE, "input": [{"role": "tool", "content": "x"}]}, "grader.input[0]"),
    ({**JUDGE, "sampling_params": {"temperature": 0, "beam": 2}}, "grader.sampling_params"),
    ({"type": "multi", "name": "m", "graders": {}, "calculate_output": "1"}, "grader.graders"),
    ({"type": "multi", "name": "m", "graders": {"a": exact_match_grader()}, "calculate_output": "a + b"},
     "grader.calculate_output"),
    ({"type": "multi", "name": "m", "graders": {"a": exact_match_grader()}, "calculate_output": "a.__class__"},
     "grader.calculate_output"),
    ({"type": "multi", "name": "m", "graders": {"a": {"type": "multi", "name": "n", "graders": {}, "calculate_output": "1"}},
      "calculate_output": "a"}, "grader.graders.a.type"),
])
def test_malformed_graders_name_the_field(grader: Any, param: str) -> None:
    with pytest.raises(GraderError) as error:
        validate_grader(grader)
    assert error.value.param == param


def test_graders_that_need_a_model_are_valid_but_not_run_here() -> None:
    for grader in (JUDGE, {**SIMILAR, "evaluation_metric": "cosine"}, {**SIMILAR, "evaluation_metric": "meteor"}):
        assert validate_grader(grader) is grader
        with pytest.raises(UnsupportedGrader):
            run_grader(grader, "x", {"reference_answer": "x"})
