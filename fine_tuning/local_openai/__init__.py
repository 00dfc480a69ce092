"""A local, offline stand-in for OpenAI's files / fine-tuning / chat completions API.

Split the way moto splits a service: `state` (the persistent store), the behaviour with one
module per resource (`files`, `jobs`, `chat` for models and chat completions) wired together
by `service.LocalOpenAI`, with `errors` and `training_data` beside them; `learner` (the small
model that is trained); `http` (framework-free router); plus adapters: `server` (uvicorn),
`transport` (in-process httpx2 transport and `local_client`), and `resource` (a
dagster-openai resource). It does not imitate GPT: see learner.py for what it learns.
"""
