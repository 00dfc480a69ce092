"""The choices of a chat completion: what the model replies (or which tool it calls), choice by choice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from fine_tuning.core.tokens import TokenCounter
from local_openai import learner, structured_outputs
from local_openai.chat import decoding, tokenizer
from local_openai.chat.records import Choice
from local_openai.chat.request import ChatRequest
from local_openai.chat.response_format import invalid_schema
from local_openai.chat.tools import ToolSpec, call_input, tool_call, tool_to_call
from local_openai.store import new_id


class Answerer:
    """Answers one checked request with a fine-tuned model's weights, or zero-shot without them."""

    def __init__(self, request: ChatRequest, weights: learner.SoftmaxModel | None, counter: TokenCounter) -> None:
        self.request = request
        self.weights = weights
        self.counter = counter
        self.messages = request.messages
        ranked = weights.ranked_replies(self.messages) if weights is not None else []
        # A model fine-tuned on function calls answers with the calls it learnt when the request
        # offers those functions; otherwise its call labels are not replies.
        self.learnt_calls = self._learnt_calls(ranked[0]) if ranked else None
        self.ranked = [label for label in ranked if learner.label_calls(label) is None]

    def _learnt_calls(self, label: str) -> list[dict[str, str]] | None:
        calls = learner.label_calls(label)
        tools = self.request.tools
        if calls is None or tools is None or tools.mode == "none":
            return None
        offered = {tool.name for tool in tools.tools if tool.kind == "function"}
        if tools.mode == "named" and [call["name"] for call in calls] != [tools.named]:
            return None
        return calls if all(call["name"] in offered for call in calls) else None

    def choices(self) -> list[Choice]:
        """The n choices of the completion."""
        if self.learnt_calls is not None:
            return [self._learnt_call() for _ in range(self.request.n)]
        try:
            greedy = structured_outputs.answer_from_ranking(self.messages, self.request.response_format, self.ranked)
            tool = tool_to_call(self.request.tools, self.messages) if self.request.tools else None
            if tool is not None:
                return [self._call(tool, greedy) for _ in range(self.request.n)]
            distribution = self._distribution(greedy)
            texts = decoding.pick_texts(distribution, self.request.sampling, self.request.n)
            return [self._reply(text, distribution) for text in texts]
        except structured_outputs.SchemaError as exc:  # $ref, recursion or constraints it cannot satisfy
            raise invalid_schema(exc) from None

    def _distribution(self, greedy: str) -> decoding.Distribution:
        """The reply distribution, computed only when logprobs, sampling or logit_bias need it."""
        sampling = self.request.sampling
        if not (self.request.logprobs or sampling.sampled or sampling.logit_bias):
            return decoding.Distribution.certain(greedy)
        if self.weights is not None:
            ranked = learner.reply_probabilities(self.weights, self.messages)
        else:
            ranked = learner.zero_shot_probabilities(self.messages, learner.system_prompt_candidates(self.messages))
        labels = [label for label, _ in ranked]

        def render(label: str) -> str:
            rest = [other for other in labels if other != label]
            return structured_outputs.answer_from_ranking(self.messages, self.request.response_format, [label, *rest])

        distribution = decoding.reply_distribution(ranked, render, greedy)
        return decoding.with_logit_bias(distribution, sampling.logit_bias)

    def _reply(self, text: str, distribution: decoding.Distribution) -> Choice:
        content, tokens, reason = decoding.cut(text, self.request.stop, self.request.max_tokens)
        logprobs = None
        if self.request.logprobs:
            logprobs = decoding.token_logprobs(tokens, distribution, self.request.top_logprobs)
        used = len(tokens) if reason == "length" else self.counter.count(content)
        return Choice(content, reason or "stop", used, [token.text for token in tokens], logprobs=logprobs)

    def _learnt_call(self) -> Choice:
        assert self.learnt_calls is not None and self.request.tools is not None
        used = sum(self.counter.count(call["name"]) + self.counter.count(call["arguments"]) for call in self.learnt_calls)
        if self.request.tools.legacy:
            first = self.learnt_calls[0]
            return Choice(None, "function_call", used, function_call={"name": first["name"], "arguments": first["arguments"]})
        calls = [{"id": new_id("call", "_"), "type": "function", "function": dict(call)} for call in self.learnt_calls]
        return Choice(None, "tool_calls", used, tool_calls=calls)

    def _call(self, tool: ToolSpec, greedy: str) -> Choice:
        arguments = call_input(tool, self.ranked, self.messages, greedy)
        _, tokens, reason = decoding.cut(arguments, (), self.request.max_tokens)
        arguments = tokenizer.join(tokens) if reason == "length" else arguments
        used = len(tokens) if reason == "length" else self.counter.count(tool.name) + self.counter.count(arguments)
        call = tool_call(tool, arguments)
        named = self.request.tools is not None and self.request.tools.mode == "named"
        if self.request.tools is not None and self.request.tools.legacy:
            finish = reason or ("stop" if named else "function_call")
            return Choice(None, finish, used, function_call=call["function"])
        finish = reason or ("stop" if named else "tool_calls")
        return Choice(None, finish, used, tool_calls=[call])


def prediction_tokens(prediction: str | None, choices: Sequence[Choice]) -> tuple[int, int]:
    """(accepted, rejected) predicted tokens: those of the prediction that do (not) appear in the reply."""
    if prediction is None or not choices:
        return 0, 0
    predicted = Counter(token.data for token in tokenizer.tokenize(prediction))
    produced = Counter(token.data for token in tokenizer.tokenize(choices[0].content or ""))
    accepted = sum((predicted & produced).values())
    return accepted, sum(predicted.values()) - accepted
