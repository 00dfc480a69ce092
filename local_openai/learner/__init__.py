"""The local backend's learner: a small, deterministic text classifier (numpy for the arithmetic).

It is *not* a language model. A fine-tuning "model" here is a softmax regression over hashed
word features of an example's non-assistant messages, predicting the assistant reply string as
one class among the distinct replies seen in training. That is enough for classification-style
fine-tuning (the pipeline's use case) to show a real learning signal: loss falls, validation
accuracy rises, and the tuned model beats the zero-shot base model.

- `features`: what a conversation looks like to the model (hashed words, the reply, token accuracy).
- `model`: `SoftmaxModel`, the trained weights, and how they rank replies.
- `training`: mini-batch gradient descent with per-step metrics and epoch checkpoints.
- `arrays`: the examples as a sparse matrix and the weights as a dense one, while training.
- `hyperparameters`: OpenAI-style "auto" epochs, batch size and learning-rate multiplier.
- `zero_shot`: how a base model (no weights) picks an answer.
- `probabilities`: read-only reply probabilities (fine-tuned or zero-shot) for logprobs and sampling.
- `tokens`: token counts for `trained_tokens` and chat `usage`, counted as the pipeline counts.

Turning a prediction into a reply (plain text, json_object, strict json_schema) is the business
of `structured_outputs`.
"""

from typing import TYPE_CHECKING, Any

from local_openai.learner.features import Message, label_calls
from local_openai.learner.hyperparameters import (
    auto_batch_size,
    auto_learning_rate_multiplier,
    auto_n_epochs,
    resolve_hyperparameters,
)
from local_openai.learner.model import SoftmaxModel
from local_openai.learner.probabilities import Ranked, reply_probabilities, zero_shot_probabilities
from local_openai.learner.tokens import count_message_tokens, count_text_tokens
from local_openai.learner.zero_shot import overlap_scores, system_prompt_candidates, zero_shot_choice

if TYPE_CHECKING:
    from local_openai.learner.training import EpochCheckpoint, StepMetrics, TrainingResult, train

# Training needs numpy (0.3 s to import); answering chat does not. Every `dagster` command that
# loads the definitions offline builds the local backend, so training is imported on first use.
_TRAINING_NAMES = ("EpochCheckpoint", "StepMetrics", "TrainingResult", "train")


def __getattr__(name: str) -> Any:
    if name in _TRAINING_NAMES:
        from local_openai.learner import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EpochCheckpoint",
    "Message",
    "Ranked",
    "SoftmaxModel",
    "StepMetrics",
    "TrainingResult",
    "auto_batch_size",
    "auto_learning_rate_multiplier",
    "auto_n_epochs",
    "count_message_tokens",
    "count_text_tokens",
    "label_calls",
    "overlap_scores",
    "reply_probabilities",
    "resolve_hyperparameters",
    "system_prompt_candidates",
    "train",
    "zero_shot_choice",
    "zero_shot_probabilities",
]
