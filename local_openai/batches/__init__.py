"""The Batch API resource.

- `resource`: `Batches` (create, retrieve, list, cancel).
- `input_file`: the input file's lines, checked as OpenAI checks them (problems fail the batch).
- `lifecycle`: how a batch advances from elapsed time, answers its requests once, and publishes
  its output and error files.
- `records`: `Batch`, `BatchLineError`, `BatchResult` (one output or error file line).
"""

from local_openai.batches.resource import Batches

__all__ = ["Batches"]
