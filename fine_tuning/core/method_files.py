"""One split's examples written as the training lines of a fine-tuning method (no Dagster).

Supervised lines are `core.example_files.write_examples`' (the shared chat format, written
fast); DPO and reinforcement lines come from `core.method_examples`, each counted as its method
bills it (`core.example_tokens`) so the file checks can take the writer's counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import IO

from fine_tuning.core.catalog import MIN_TRAINING_EXAMPLES
from fine_tuning.core.example_files import WrittenFile, write_examples
from fine_tuning.core.example_tokens import example_tokens
from fine_tuning.core.method_examples import Mistakes, fallback_label, preference_line, reinforcement_line
from fine_tuning.core.prompts import Prompt
from fine_tuning.core.tokens import TokenCounter

# (example id, user message, true label)
IdentifiedRow = tuple[str, str, str]


def rejected_labels(rows: Sequence[IdentifiedRow], mistakes: Mistakes, labels: Sequence[str],
                    minimum: int = MIN_TRAINING_EXAMPLES) -> dict[str, str]:
    """The examples a DPO file pairs, with the label each rejects: every example the model got
    wrong (its own mistake), then, up to `minimum` pairs, others with the label the model most
    often confuses their label with."""
    pairs = {example_id: mistakes.wrong[example_id] for example_id, _, _ in rows if example_id in mistakes.wrong}
    for index, (example_id, _, label) in enumerate(rows):
        if len(pairs) >= minimum:
            break
        pairs.setdefault(example_id, fallback_label(label, mistakes, labels, index))
    return pairs


def write_method_examples(
    rows: Iterable[IdentifiedRow],
    handle: IO[bytes],
    written: WrittenFile,
    prompt: Prompt,
    counter: TokenCounter,
    method: str,
    rejected: Mapping[str, str] | None = None,
) -> None:
    """Write one split as `method`'s lines (DPO: only the examples `rejected` names), measuring as it goes."""
    if method == "supervised":
        write_examples(((content, label) for _, content, label in rows), handle, written, prompt, counter)
        return
    digest = hashlib.sha256()
    for example_id, content, label in rows:
        messages = prompt.messages(content)
        if method == "dpo":
            if rejected is None or example_id not in rejected:
                continue
            line = preference_line(messages, prompt.answer_text(label), prompt.answer_text(rejected[example_id]))
        else:
            line = reinforcement_line(messages, prompt.answer_text(label), label)
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        handle.write(data)
        digest.update(data)
        written.examples += 1
        written.bytes += len(data)
        counted = example_tokens(line, method, counter)
        written.token_counts.append(counted.tokens)
        if counter.exact and not counted.exact:
            written.approximate_lines.append(written.examples)
    written.sha256 = digest.hexdigest()
