"""The chat completions resource.

- `resource`: `ChatCompletions.create` (and the stored completions it keeps).
- `request`: every request parameter checked: honoured, or OpenAI's 400 naming it.
- `checks`: typed field checks with OpenAI's error shapes; `messages`, `response_format`, `tools`
  check those parts of a request.
- `answering`: the choices (a reply, or a tool call); `decoding`: sampling, logit_bias, stop,
  max_tokens and token logprobs from the learner's own probabilities; `tokenizer`: replies as tokens.
- `records`: the completion, its choices and its stream of chunks; `stored`: `store: true`.
"""

from local_openai.chat.records import ChatCompletion, StreamedCompletion
from local_openai.chat.resource import ChatCompletions

__all__ = ["ChatCompletion", "ChatCompletions", "StreamedCompletion"]
