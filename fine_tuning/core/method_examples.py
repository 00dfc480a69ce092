"""Training lines of each fine-tuning method, from one labelled example (prompt, true answer).

A free-form task's "label" is its reference answer text: DPO rejects the model's own answer that
failed the task's grader (`failed_answers`), and the reinforcement grader is the task's grader.

- supervised: the prompt and the true answer (`prompts`' chat example);
- DPO: the prompt, the true answer preferred and a wrong answer not preferred. By default the
  wrong answer is a model's own mistake on that very example (the production model's, or the
  base model's before there is one), so a DPO run teaches the model where it errs;
- reinforcement: the prompt, with the true answer as `reference_answer` (and the bare label as
  `label`) for the grader to read as `item.reference_answer` / `item.label`.
The default grader of a labelled task compares the model's answer with `item.reference_answer`
exactly (`string_check` eq), the same test as the accuracy check's exact match.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fine_tuning.core.graders import exact_match_grader

REFERENCE_FIELD = "reference_answer"
LABEL_FIELD = "label"

Message = dict[str, Any]


def supervised_line(prompt: Sequence[Message], answer: str) -> dict[str, Any]:
    """A chat example: the prompt and the assistant's answer."""
    return {"messages": [*prompt, {"role": "assistant", "content": answer}]}


def preference_line(prompt: Sequence[Message], preferred: str, non_preferred: str) -> dict[str, Any]:
    """A DPO example: the prompt, the preferred answer and the non-preferred one."""
    return {
        "input": {"messages": list(prompt)},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": non_preferred}],
    }


def reinforcement_line(prompt: Sequence[Message], answer: str, label: str) -> dict[str, Any]:
    """A reinforcement example: the prompt, and the reference the grader compares with."""
    return {"messages": list(prompt), REFERENCE_FIELD: answer, LABEL_FIELD: label}


def default_grader() -> dict[str, Any]:
    """A labelled task's grader: the answer equals the reference answer exactly."""
    return exact_match_grader(REFERENCE_FIELD, name="exact_match")


@dataclass(frozen=True)
class Mistakes:
    """What a model answered on the training examples: its wrong labels, and its usual confusions."""

    model: str
    wrong: dict[str, str]  # example id -> the wrong label it gave
    confusions: Counter[tuple[str, str]]  # (true label, wrong label) -> how often


def mistakes_of(model: str, answers: Mapping[str, str], truths: Mapping[str, str], labels: Sequence[str]) -> Mistakes:
    """A model's wrong answers among the labels (a failed or unparseable answer is no usable mistake)."""
    known = set(labels)
    wrong = {
        example_id: answer for example_id, answer in answers.items()
        if answer in known and example_id in truths and answer != truths[example_id]
    }
    return Mistakes(model, wrong, Counter((truths[i], label) for i, label in wrong.items()))


def failed_answers(model: str, answers: Mapping[str, str], outcomes: Mapping[str, bool],
                   truths: Mapping[str, str], unanswered: str) -> Mistakes:
    """A free-form model's answers that failed the task's grader: each is a DPO pair's non-preferred
    answer (a failed request, `unanswered`, or the reference itself is no usable mistake)."""
    wrong = {
        example_id: answer for example_id, answer in answers.items()
        if example_id in truths and not outcomes.get(example_id, False) and answer != unanswered
        and answer != truths[example_id]
    }
    return Mistakes(model, wrong, Counter())


def fallback_label(truth: str, mistakes: Mistakes, labels: Sequence[str], index: int) -> str:
    """For an example the model got right: the label it most often confuses this category with,
    else another label in turn (so a small file still reaches the minimum number of examples)."""
    confused = [(count, label) for (true, label), count in mistakes.confusions.items() if true == truth]
    if confused:
        return max(confused)[1]
    others = [label for label in labels if label != truth]
    return others[index % len(others)]
