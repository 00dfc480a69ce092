"""The fine-tuning jobs resource.

- `resource`: `Jobs` (create, retrieve, list, cancel, events, checkpoints).
- `create_request`: each field of a create request, checked synchronously as OpenAI does.
- `lifecycle`: how a job advances from elapsed time, trains once, and fails or succeeds.
- `training_data`: parsing of the uploaded chat JSONL (a problem fails the job, not the request).
"""

from local_openai.jobs.resource import Jobs

__all__ = ["Jobs"]
