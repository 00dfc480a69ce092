"""A free-form task's metric: each plain-text answer graded by the task's grader (the code the local
backend's /graders/run runs), passing at the threshold; accuracy, mean grade and stored scores follow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fine_tuning.core.batch_scoring import score_batches
from fine_tuning.core.graders import GraderError, exact_match_grader
from fine_tuning.core.grading import (
    Grading,
    ProviderGrader,
    check_grader_runs,
    default_free_form_grader,
    grading_item,
    local_grading_problem,
)
from fine_tuning.core.method_examples import failed_answers
from fine_tuning.core.prompts import Prompt, TrainingExampleLines
from fine_tuning.core.scoring import NO_ANSWER, Answer, Example, ModelScore, ask_models, chat_request, prompts_fingerprint
from local_openai.graders import Graders
from local_openai.transport import local_client

REPLY = "Your parcel is on its way; the tracking link is in your email."
GRADING = Grading(default_free_form_grader())
PROMPT = Prompt((), "Reply to each message.", grading=GRADING)
EXAMPLES = [Example("m1", "Where is parcel 1?", REPLY), Example("m2", "Where is parcel 2?", REPLY),
            Example("m3", "Where is parcel 3?", REPLY)]


def test_a_free_form_prompt_asks_for_plain_text_and_trains_on_the_answer_itself() -> None:
    assert PROMPT.system_message() == {"role": "system", "content": "Reply to each message."}
    assert "response_format" not in chat_request("gpt-4o-mini-2024-07-18", EXAMPLES[0], PROMPT)
    assert PROMPT.answer_text(REPLY) == REPLY and PROMPT.parse_answer(" some text ") == " some text "
    line = json.loads(TrainingExampleLines(PROMPT).line("Where is parcel 1?", REPLY))
    assert line["messages"][-1] == {"role": "assistant", "content": REPLY}
    with pytest.raises(ValueError, match="no label set"):
        Prompt(("a",), grading=GRADING)


def test_grades_are_the_local_backend_s_graders_run_rewards_and_pass_at_the_threshold() -> None:
    answers = [REPLY, REPLY.replace("email", "inbox"), "Please update the app.", "parcel"]
    for answer in answers:
        served = Graders().run({"grader": default_free_form_grader(), "model_sample": answer,
                                "item": {"reference_answer": REPLY, "label": REPLY}}).to_api()
        assert GRADING.grade(answer, REPLY) == served["reward"]
    grades = [GRADING.grade(answer, REPLY) for answer in answers]
    assert grades[0] == 1.0 and 0.8 <= grades[1] < 1.0 and grades[2] < 0.8 and grades[3] < 0.8
    assert [GRADING.passes(grade) for grade in grades] == [True, True, False, False]


def test_accuracy_is_the_share_passing_and_the_mean_grade_counts_failures_as_zero() -> None:
    near = REPLY.replace("email", "inbox")
    replies = {0: Answer(REPLY, False), 1: Answer(near, False), 2: Answer(None, True, error="boom")}
    scores = score_batches(["m"], EXAMPLES, {"m": {f"e{i}": answer for i, answer in replies.items()}},
                           grading=GRADING).models["m"]
    assert (scores.examples, scores.correct, scores.failed_requests) == (3, 2, 1)
    assert scores.outcomes == {"m1": True, "m2": True, "m3": False}
    assert scores.grades["m3"] == 0.0 and scores.answers["m3"] == NO_ANSWER
    assert scores.mean_grade == pytest.approx((1.0 + GRADING.grade(near, REPLY)) / 3)
    assert scores.per_category == {} and not scores.confusions  # no label set, no confusion matrix
    assert ModelScore.from_json(scores.to_json()) == scores  # the grades are stored with the score


def test_stored_scores_are_keyed_by_the_grader_and_its_threshold() -> None:
    fingerprints = {
        prompts_fingerprint(EXAMPLES, Prompt((), "Reply.", grading=grading))
        for grading in (GRADING, Grading(default_free_form_grader(), 0.9), Grading(exact_match_grader()))
    }
    assert len(fingerprints) == 3


def test_a_model_s_failed_answers_are_its_dpo_mistakes() -> None:
    truths = {"m1": REPLY, "m2": REPLY, "m3": REPLY, "m4": REPLY}
    answers = {"m1": REPLY, "m2": "parcel", "m3": NO_ANSWER, "m4": REPLY}
    outcomes = {"m1": True, "m2": False, "m3": False, "m4": False}  # m4: a strict grader failed the reference itself
    assert failed_answers("base", answers, outcomes, truths, NO_ANSWER).wrong == {"m2": "parcel"}


def test_graders_that_need_a_model_are_asked_of_the_provider_and_refused_where_it_has_none(tmp_path: Path) -> None:
    """Through the same client: a grader the pipeline computes gives the same reward from the local
    backend's /graders/run; a score_model is refused by it with a 400, named before anything runs."""
    client = local_client(tmp_path / "store", max_retries=0)
    provider = ProviderGrader(client)
    near = REPLY.replace("email", "inbox")
    assert provider(default_free_form_grader(), near, grading_item(REPLY, REPLY)) == GRADING.grade(near, REPLY)
    assert provider.tokens == {}  # no grader model asked
    judge = Grading({"type": "score_model", "name": "judge", "model": "gpt-4o-mini-2024-07-18",
                     "input": [{"role": "user", "content": "{{sample.output_text}}"}]})
    assert judge.needs_model and not GRADING.needs_model
    check_grader_runs(client, GRADING)  # nothing to ask
    with pytest.raises(GraderError, match="grader 'judge' needs a grader model.*HTTP 400"):
        check_grader_runs(client, judge)
    # Graded through whatever runs it (here a grader standing in for the provider's grader model).
    graded = score_batches(["m"], EXAMPLES[:2], {"m": {"e0": Answer(REPLY, False), "e1": Answer("x", False)}},
                           grading=judge, remote=lambda grader, sample, item: 0.9 if sample == item["reference_answer"] else 0.1)
    assert graded.models["m"].grades == {"m1": 0.9, "m2": 0.1} and graded.models["m"].correct == 1


def test_graders_that_need_a_model_are_refused_as_a_metric_by_name() -> None:
    assert local_grading_problem(default_free_form_grader()) is None
    judge = {"type": "score_model", "name": "judge", "model": "gpt-4o-mini-2024-07-18",
             "input": [{"role": "user", "content": "{{sample.output_text}}"}]}
    problem = local_grading_problem(judge)
    assert problem is not None and "grader model" in problem.message
    cosine = {**default_free_form_grader(), "evaluation_metric": "cosine"}
    problem = local_grading_problem(cosine)
    assert problem is not None and problem.param.endswith("evaluation_metric")


def test_models_answer_free_text_online_and_are_graded(tmp_path: Path) -> None:
    """The local backend's base model, asked with no response_format, answers plain text; graded, not matched."""
    client = local_client(tmp_path / "store", max_retries=0)
    scores = ask_models(client, EXAMPLES, PROMPT, ["gpt-4o-mini-2024-07-18"], concurrency=2)
    score = scores.models["gpt-4o-mini-2024-07-18"]
    assert score.failed_requests == 0 and score.examples == 3 and set(score.grades) == {"m1", "m2", "m3"}
    assert all(not answer.startswith("{") for answer in score.answers.values())  # plain text, no JSON object
    assert score.grades == {key: GRADING.grade(score.answers[key], REPLY) for key in score.grades}
    assert score.correct == sum(grade >= 0.8 for grade in score.grades.values())
