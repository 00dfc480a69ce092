"""What differs between the three fine-tuning methods once a job's files are read.

- supervised: conversations; the learner's cross-entropy; metrics train/valid loss and token accuracy;
- dpo: (prompt, preferred, non-preferred) pairs; the DPO loss with `beta`; the same metric
  columns (the loss is the DPO loss, train accuracy the share of pairs ranked right);
- reinforcement: (prompt, item) examples and the job's grader; policy-gradient steps; metrics
  are the mean reward, each grader's mean score and the validation reward (as OpenAI reports
  reinforcement jobs: reward and grader scores per step).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fine_tuning.core.graders import fill_template, run_grader
from local_openai import learner
from local_openai.learner.features import message_text
from local_openai.records import Job, JobEvent

AUTO_BETA = 0.1
AUTO_COMPUTE_MULTIPLIER = 1.0
AUTO_EVAL_SAMPLES = 1
# Replies sampled per prompt at compute_multiplier 1: with 4, a 12-reply task's uniform start found
# its rewarded reply in under a third of its groups and some seeds stalled (docs/methods.md).
SAMPLES_PER_PROMPT = 8
EVAL_POINTS_PER_EPOCH = 10


def resolve(job: Job, n_examples: int) -> dict[str, Any]:
    """The job's hyperparameters with every "auto" replaced by the value used."""
    requested = job.requested
    resolved = learner.resolve_hyperparameters(requested, n_examples)
    if job.method_type == "dpo":
        beta = requested.get("beta", "auto")
        resolved["beta"] = AUTO_BETA if beta in (None, "auto") else float(beta)
    if job.method_type == "reinforcement":
        steps_per_epoch = math.ceil(n_examples / resolved["batch_size"])
        auto = {
            "compute_multiplier": AUTO_COMPUTE_MULTIPLIER,
            "eval_interval": max(1, steps_per_epoch // EVAL_POINTS_PER_EPOCH),
            "eval_samples": AUTO_EVAL_SAMPLES,
        }
        for name, default in auto.items():
            value = requested.get(name, "auto")
            resolved[name] = default if value in (None, "auto") else value
        resolved["reasoning_effort"] = requested.get("reasoning_effort", "default")
    return resolved


def train(job: Job, examples: Sequence[dict[str, Any]], validation: Sequence[dict[str, Any]],
          initial: learner.SoftmaxModel | None) -> learner.TrainingResult:
    """Train the job's method on its parsed examples."""
    hyper = job.hyperparameters
    common = {
        "n_epochs": hyper["n_epochs"], "batch_size": hyper["batch_size"],
        "learning_rate_multiplier": hyper["learning_rate_multiplier"], "seed": job.seed, "initial": initial,
    }
    if job.method_type == "dpo":
        from local_openai.learner.preferences import train_preferences

        return train_preferences(
            [preference_pair(e) for e in examples], beta=hyper["beta"],
            validation=[preference_pair(e) for e in validation], **common,
        )
    if job.method_type == "reinforcement":
        from local_openai.learner.rewards import train_rewards

        assert job.grader is not None
        grader = job.grader
        items = [reward_example(e) for e in examples]
        return train_rewards(
            items, lambda reply, item: grade(grader, reply, item), reply_candidates(grader, examples, validation),
            samples_per_prompt=max(2, round(SAMPLES_PER_PROMPT * hyper["compute_multiplier"])),
            eval_interval=hyper["eval_interval"], eval_samples=hyper["eval_samples"],
            validation=[reward_example(e) for e in validation], **common,
        )
    return learner.train([e["messages"] for e in examples], validation=[e["messages"] for e in validation], **common)


def preference_pair(example: dict[str, Any]) -> Any:
    """A DPO line as the learner's preference pair."""
    from local_openai.learner.preferences import PreferencePair

    return PreferencePair(
        example["input"]["messages"],
        message_text(example["preferred_output"][0]),
        message_text(example["non_preferred_output"][0]),
    )


def reward_example(example: dict[str, Any]) -> Any:
    """A reinforcement line as the learner's (prompt, item)."""
    from local_openai.learner.rewards import RewardExample

    return RewardExample(example["messages"], example)


def grade(grader: dict[str, Any], reply: str, item: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
    """(reward, each grader's score) of one reply."""
    run = run_grader(grader, reply, item)
    return run.reward, run.scores


def reply_candidates(grader: dict[str, Any], *files: Sequence[dict[str, Any]]) -> list[str]:
    """The replies the grader's references name over the items, in first-seen order."""
    references = _references(grader)
    seen: dict[str, None] = {}
    for examples in files:
        for example in examples:
            for reference in references:
                text = fill_template(reference, "", example)
                if text:
                    seen.setdefault(text, None)
    return list(seen)


def _references(grader: dict[str, Any]) -> list[str]:
    if grader["type"] == "multi":
        return [ref for sub in grader["graders"].values() for ref in _references(sub)]
    return [grader["reference"]] if "reference" in grader else []


# -- reporting -------------------------------------------------------------------------------


def metrics_csv(method: str, steps: Sequence[learner.StepMetrics]) -> bytes:
    """The result file: one row of metrics per step, with the method's columns."""
    if method == "reinforcement":
        names = sorted({name for s in steps for name in (s.grader_scores or {})})
        lines = [",".join(["step", "train_reward_mean", "valid_reward_mean", *(f"train_{n}_score_mean" for n in names)])]
        for s in steps:
            valid = "" if s.valid_reward_mean is None else f"{s.valid_reward_mean:.6f}"
            scores = [f"{(s.grader_scores or {}).get(n, 0.0):.6f}" for n in names]
            lines.append(",".join([str(s.step), f"{s.train_reward_mean or 0.0:.6f}", valid, *scores]))
        return ("\n".join(lines) + "\n").encode()
    lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
    for s in steps:
        valid_loss = "" if s.valid_loss is None else f"{s.valid_loss:.6f}"
        valid_acc = "" if s.valid_mean_token_accuracy is None else f"{s.valid_mean_token_accuracy:.6f}"
        # OpenAI's train_accuracy is the batch's token accuracy, like the valid column beside it.
        lines.append(f"{s.step},{s.train_loss:.6f},{s.train_mean_token_accuracy:.6f},{valid_loss},{valid_acc}")
    return ("\n".join(lines) + "\n").encode()


def metrics_event(method: str, at: float, step: learner.StepMetrics, total_steps: int) -> JobEvent:
    """The `metrics` event of one training step."""
    if method == "reinforcement":
        data: dict[str, Any] = {
            "step": step.step, "total_steps": total_steps, "train_reward_mean": step.train_reward_mean,
            "grader_scores": dict(step.grader_scores or {}),
        }
        text = f"Step {step.step}/{total_steps}: train reward={step.train_reward_mean:.4f}"
        if step.valid_reward_mean is not None:
            data["valid_reward_mean"] = step.valid_reward_mean
            text += f", valid reward={step.valid_reward_mean:.4f}"
        return JobEvent.new(at, text, data=data, kind="metrics")
    data = {"step": step.step, "train_loss": step.train_loss, "total_steps": total_steps,
            "train_mean_token_accuracy": step.train_mean_token_accuracy}
    text = f"Step {step.step}/{total_steps}: training loss={step.train_loss:.4f}"
    if method == "dpo":
        data["train_preference_accuracy"] = step.train_accuracy
    if step.valid_loss is not None:
        data["valid_loss"] = step.valid_loss
        data["valid_mean_token_accuracy"] = step.valid_mean_token_accuracy
        text += f", validation loss={step.valid_loss:.4f}"
    return JobEvent.new(at, text, data=data, kind="metrics")


def checkpoint_metrics(method: str, checkpoint: learner.EpochCheckpoint) -> dict[str, float | None]:
    """A checkpoint's `metrics` object."""
    metrics = checkpoint.metrics
    if method == "reinforcement":
        return {
            "step": float(checkpoint.step), "train_reward_mean": metrics.train_reward_mean,
            "valid_reward_mean": checkpoint.full_valid_mean_token_accuracy,
        }
    return {
        "step": float(checkpoint.step),
        "train_loss": metrics.train_loss,
        "train_mean_token_accuracy": metrics.train_mean_token_accuracy,
        "valid_loss": metrics.valid_loss,
        "valid_mean_token_accuracy": metrics.valid_mean_token_accuracy,
        "full_valid_loss": checkpoint.full_valid_loss,
        "full_valid_mean_token_accuracy": checkpoint.full_valid_mean_token_accuracy,
    }
