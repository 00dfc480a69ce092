"""Graders in OpenAI's JSON shape: checked before use, and run on a model's answer.

Shapes and semantics follow OpenAI's graders guide and API reference (as of 2025-06,
`/v1/fine_tuning/alpha/graders/validate` and `/run`):
- `string_check` {name, input, reference, operation: eq | ne | like | ilike}: 1.0 or 0.0; `like`
  is "input contains reference", `ilike` the same ignoring case;
- `text_similarity` {name, input, reference, evaluation_metric}: a score in [0, 1];
- `score_model` {name, model, input: messages, range?, sampling_params?}: a model's score;
- `multi` {name, graders: {key: grader}, calculate_output}: a formula over the sub-graders'
  scores with + - * / ^ and min, max, abs, floor, ceil, exp, sqrt, log.
Templates `{{ item.field }}` and `{{ sample.output_text }}` / `{{ sample.output_json.key }}`
are filled from the dataset row and the model's answer (only the `item` and `sample`
namespaces exist).

Running needs no network for `string_check`, `text_similarity` (fuzzy_match, bleu, gleu and
rouge_*) and `multi` over them. `cosine` (an embedding model), `meteor` (WordNet) and
`score_model` (a grader model) cannot be computed here: `run_grader` refuses them with
`UnsupportedGrader`, never an invented score; `validate_grader` still accepts them, as OpenAI does.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GRADER_TYPES = ("string_check", "text_similarity", "score_model", "multi")
STRING_CHECK_OPERATIONS = ("eq", "ne", "like", "ilike")
SIMILARITY_METRICS = (
    "cosine", "fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l",
)
LOCAL_SIMILARITY_METRICS = ("fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")
MESSAGE_ROLES = ("user", "assistant", "system", "developer")
SAMPLING_PARAMS = ("max_completions_tokens", "reasoning_effort", "seed", "temperature", "top_p")
FORMULA_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil,
    "exp": math.exp, "sqrt": math.sqrt, "log": math.log,
}
_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_REQUIRED = {
    "string_check": {"type", "name", "input", "reference", "operation"},
    "text_similarity": {"type", "name", "input", "reference", "evaluation_metric"},
    "score_model": {"type", "name", "model", "input"},
    "multi": {"type", "name", "graders", "calculate_output"},
}
_OPTIONAL = {"score_model": {"range", "sampling_params"}}


class GraderError(ValueError):
    """A grader that does not have OpenAI's shape; `param` is the path of the offending field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message, self.param = message, param


class UnsupportedGrader(GraderError):
    """A well-formed grader that cannot be computed here (it needs a model or a corpus)."""


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def validate_grader(grader: Any, param: str = "grader", nested: bool = False) -> dict[str, Any]:
    """The grader when it has OpenAI's shape; GraderError naming the field otherwise."""
    if not isinstance(grader, dict):
        raise GraderError("A grader must be an object.", param)
    kind = grader.get("type")
    if kind not in GRADER_TYPES or (nested and kind == "multi"):
        allowed = [t for t in GRADER_TYPES if not (nested and t == "multi")]
        raise GraderError(f"Invalid grader type {kind!r}: one of {', '.join(allowed)}.", f"{param}.type")
    missing = _REQUIRED[kind] - set(grader)
    if missing:
        raise GraderError(f"Missing required field(s) {sorted(missing)} of a {kind} grader.", f"{param}.{sorted(missing)[0]}")
    unknown = set(grader) - _REQUIRED[kind] - _OPTIONAL.get(kind, set())
    if unknown:
        raise GraderError(f"Unknown field(s) {sorted(unknown)} of a {kind} grader.", f"{param}.{sorted(unknown)[0]}")
    _string(grader["name"], f"{param}.name", non_empty=True)
    {"string_check": _check_string_check, "text_similarity": _check_text_similarity,
     "score_model": _check_score_model, "multi": _check_multi}[kind](grader, param)
    return grader


def _string(value: Any, param: str, non_empty: bool = False) -> str:
    if not isinstance(value, str) or (non_empty and not value.strip()):
        raise GraderError(f"'{param}' must be a {'non-empty ' if non_empty else ''}string.", param)
    return value


def _check_template(text: str, param: str) -> None:
    for variable in _TEMPLATE.findall(text):
        namespace = variable.split(".", 1)[0]
        if namespace not in ("item", "sample") or "." not in variable:
            raise GraderError(
                f"Invalid template variable {{{{{variable}}}}} in '{param}': use {{{{item.<field>}}}} or "
                "{{sample.output_text}} / {{sample.output_json.<key>}}.", param,
            )


def _check_string_check(grader: dict[str, Any], param: str) -> None:
    for key in ("input", "reference"):
        _check_template(_string(grader[key], f"{param}.{key}"), f"{param}.{key}")
    if grader["operation"] not in STRING_CHECK_OPERATIONS:
        raise GraderError(f"operation must be one of {', '.join(STRING_CHECK_OPERATIONS)}.", f"{param}.operation")


def _check_text_similarity(grader: dict[str, Any], param: str) -> None:
    for key in ("input", "reference"):
        _check_template(_string(grader[key], f"{param}.{key}"), f"{param}.{key}")
    if grader["evaluation_metric"] not in SIMILARITY_METRICS:
        raise GraderError(
            f"evaluation_metric must be one of {', '.join(SIMILARITY_METRICS)}.", f"{param}.evaluation_metric"
        )


def _check_score_model(grader: dict[str, Any], param: str) -> None:
    _string(grader["model"], f"{param}.model", non_empty=True)
    messages = grader["input"]
    if not isinstance(messages, list) or not messages:
        raise GraderError("'input' must be a non-empty list of messages.", f"{param}.input")
    for index, message in enumerate(messages):
        where = f"{param}.input[{index}]"
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES or "content" not in message:
            raise GraderError(f"A message is {{role: {' | '.join(MESSAGE_ROLES)}, content}}.", where)
        if set(message) - {"role", "content", "type"} or message.get("type", "message") != "message":
            raise GraderError("A message has only role, content and type 'message'.", where)
        content = message["content"]
        if isinstance(content, str):
            _check_template(content, f"{where}.content")
        elif not isinstance(content, (dict, list)):
            raise GraderError("content must be a string, a content item or a list of them.", f"{where}.content")
    score_range = grader.get("range")
    if score_range is not None and not (
        isinstance(score_range, list) and len(score_range) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in score_range)
        and score_range[0] < score_range[1]
    ):
        raise GraderError("range must be two numbers [low, high] with low < high.", f"{param}.range")
    sampling = grader.get("sampling_params")
    if sampling is not None and (not isinstance(sampling, dict) or set(sampling) - set(SAMPLING_PARAMS)):
        raise GraderError(f"sampling_params takes only {', '.join(SAMPLING_PARAMS)}.", f"{param}.sampling_params")


def _check_multi(grader: dict[str, Any], param: str) -> None:
    graders = grader["graders"]
    if not isinstance(graders, dict) or not graders:
        raise GraderError("'graders' must be a non-empty object of named graders.", f"{param}.graders")
    for key, sub in graders.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise GraderError(f"Grader key {key!r} must be an identifier (the formula names it).", f"{param}.graders")
        validate_grader(sub, f"{param}.graders.{key}", nested=True)
    formula = _string(grader["calculate_output"], f"{param}.calculate_output", non_empty=True)
    parse_formula(formula, set(graders), f"{param}.calculate_output")


def parse_formula(formula: str, names: set[str], param: str = "calculate_output") -> ast.expr:
    """The formula's syntax tree when it uses only numbers, the graders' names, + - * / ^ and
    the allowed functions; GraderError otherwise."""
    try:
        tree = ast.parse(formula.replace("^", "**"), mode="eval").body
    except SyntaxError:
        raise GraderError(f"calculate_output {formula!r} is not a formula.", param) from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names and node.id not in FORMULA_FUNCTIONS:
            raise GraderError(f"calculate_output names {node.id!r}, which is not one of the graders.", param)
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FORMULA_FUNCTIONS):
            raise GraderError(f"calculate_output may call only {', '.join(FORMULA_FUNCTIONS)}.", param)
        allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd, ast.Call, ast.Name, ast.Load,
                   ast.Constant, *_OPERATORS)
        if not isinstance(node, allowed) or (isinstance(node, ast.Constant) and not isinstance(node.value, (int, float))):
            raise GraderError(f"calculate_output {formula!r} uses something other than + - * / ^ and functions.", param)
    return tree


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


@dataclass
class GraderRun:
    """What running a grader gives: the reward, each (sub-)grader's score, and what went wrong."""

    reward: float
    scores: dict[str, float] = field(default_factory=dict)
    sub_rewards: dict[str, float] = field(default_factory=dict)
    errors: dict[str, bool] = field(default_factory=dict)


def fill_template(text: str, sample: str, item: Mapping[str, Any]) -> str:
    """`text` with every {{ namespace.path }} replaced by its value (JSON for non-strings, '' when absent)."""
    output_json = _json_or_none(sample)

    def value(found: re.Match[str]) -> str:
        path = found.group(1).split(".")
        root: Any = item if path[0] == "item" else {"output_text": sample, "output_json": output_json}
        for key in path[1:]:
            root = root.get(key) if isinstance(root, dict) else (
                root[int(key)] if isinstance(root, list) and key.isdigit() and int(key) < len(root) else None
            )
        if root is None:
            return ""
        return root if isinstance(root, str) else json.dumps(root, ensure_ascii=False)

    return _TEMPLATE.sub(value, text)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def run_grader(grader: dict[str, Any], sample: str, item: Mapping[str, Any] | None = None) -> GraderRun:
    """Grade `sample` (the model's answer) for the dataset row `item`; UnsupportedGrader when
    this grader needs a model or corpus this process does not have."""
    validate_grader(grader)
    item = item or {}
    if grader["type"] == "multi":
        scores = {key: _score(sub, sample, item, f"grader.graders.{key}") for key, sub in grader["graders"].items()}
        reward = evaluate_formula(grader["calculate_output"], scores)
        return GraderRun(reward, scores={grader["name"]: reward, **scores}, sub_rewards=dict(scores))
    score = _score(grader, sample, item, "grader")
    return GraderRun(score, scores={grader["name"]: score})


def evaluate_formula(formula: str, scores: Mapping[str, float]) -> float:
    """The value of a validated calculate_output formula for the sub-graders' scores."""
    tree = parse_formula(formula, set(scores))

    def value(node: ast.expr) -> float:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return float(scores[node.id])
        if isinstance(node, ast.UnaryOp):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if isinstance(node, ast.BinOp):
            return float(_OPERATORS[type(node.op)](value(node.left), value(node.right)))
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return float(FORMULA_FUNCTIONS[node.func.id](*(value(arg) for arg in node.args)))

    try:
        return value(tree)
    except (ZeroDivisionError, ValueError, OverflowError):
        return 0.0  # OpenAI scores a formula it cannot evaluate as 0 (formula error)


def _score(grader: dict[str, Any], sample: str, item: Mapping[str, Any], param: str) -> float:
    kind = grader["type"]
    if kind == "score_model":
        raise UnsupportedGrader(
            "score_model graders need a grader model; the local backend has none and does not invent scores.", param
        )
    text = fill_template(grader["input"], sample, item)
    reference = fill_template(grader["reference"], sample, item)
    if kind == "string_check":
        return string_check(text, reference, grader["operation"])
    metric = grader["evaluation_metric"]
    if metric not in LOCAL_SIMILARITY_METRICS:
        raise UnsupportedGrader(
            f"text_similarity '{metric}' needs {'an embedding model' if metric == 'cosine' else 'WordNet'}; "
            f"the local backend computes {', '.join(LOCAL_SIMILARITY_METRICS)}.", f"{param}.evaluation_metric",
        )
    return text_similarity(text, reference, metric)


def string_check(text: str, reference: str, operation: str) -> float:
    """1.0 when the check holds: eq / ne exactly, like contains, ilike contains ignoring case."""
    holds = {
        "eq": text == reference,
        "ne": text != reference,
        "like": reference in text,
        "ilike": reference.lower() in text.lower(),
    }[operation]
    return 1.0 if holds else 0.0


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def text_similarity(text: str, reference: str, metric: str) -> float:
    """A similarity in [0, 1] of `text` to `reference`."""
    if metric == "fuzzy_match":
        return _indel_ratio(text, reference)
    if metric in ("bleu", "gleu"):
        return _bleu(_words(text), _words(reference)) if metric == "bleu" else _gleu(_words(text), _words(reference))
    if metric == "rouge_l":
        return _f_measure(_lcs(_words(text), _words(reference)), len(_words(text)), len(_words(reference)))
    n = int(metric.rsplit("_", 1)[1])
    guess, truth = _ngrams(_words(text), n), _ngrams(_words(reference), n)
    return _f_measure(sum((guess & truth).values()), sum(guess.values()), sum(truth.values()))


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _f_measure(overlap: int, guessed: int, expected: int) -> float:
    if not overlap or not guessed or not expected:
        return 0.0
    precision, recall = overlap / guessed, overlap / expected
    return 2 * precision * recall / (precision + recall)


def _lcs(first: Sequence[Any], second: Sequence[Any]) -> int:
    previous = [0] * (len(second) + 1)
    for a in first:
        current = [0]
        for j, b in enumerate(second):
            current.append(previous[j] + 1 if a == b else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _indel_ratio(text: str, reference: str) -> float:
    """Normalised Indel similarity (rapidfuzz's `fuzz.ratio` / 100): 2 * LCS / total length."""
    total = len(text) + len(reference)
    return 1.0 if total == 0 else 2 * _lcs(text, reference) / total


def _bleu(guess: Sequence[str], truth: Sequence[str], max_n: int = 4) -> float:
    """Sentence BLEU (uniform 1-4-gram weights, brevity penalty; +1 smoothing above unigrams)."""
    if not guess or not truth:
        return 0.0
    logs = []
    for n in range(1, max_n + 1):
        guessed = _ngrams(guess, n)
        matched = sum((guessed & _ngrams(truth, n)).values())
        total = sum(guessed.values())
        if n == 1 and matched == 0:
            return 0.0
        matched, total = (matched, total) if n == 1 else (matched + 1, total + 1)
        logs.append(math.log(matched / total) if total else 0.0)
    penalty = 1.0 if len(guess) > len(truth) else math.exp(1 - len(truth) / len(guess))
    return penalty * math.exp(sum(logs) / max_n)


def _gleu(guess: Sequence[str], truth: Sequence[str], max_n: int = 4) -> float:
    """Google-BLEU: min(precision, recall) over all 1-4-grams."""
    guessed = sum((_ngrams(guess, n) for n in range(1, max_n + 1)), Counter())
    expected = sum((_ngrams(truth, n) for n in range(1, max_n + 1)), Counter())
    overlap = sum((guessed & expected).values())
    if not overlap:
        return 0.0
    return min(overlap / sum(guessed.values()), overlap / sum(expected.values()))


def exact_match_grader(reference_field: str = "reference_answer", name: str = "exact_match") -> dict[str, Any]:
    """A string_check grader: the model's answer equals the row's `reference_field` exactly."""
    return {
        "type": "string_check", "name": name, "operation": "eq",
        "input": "{{sample.output_text}}", "reference": f"{{{{item.{reference_field}}}}}",
    }
