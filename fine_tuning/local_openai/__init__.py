"""A local, offline stand-in for OpenAI's files / fine-tuning / chat completions API.

Split the way moto splits a service: `state` (persistent store and behaviour), `learner`
(the small model that is trained), `http` (framework-free router), plus adapters: `server`
(uvicorn), `transport` (in-process httpx2 transport and `local_client`), and `resource`
(a dagster-openai resource). It does not imitate GPT: see learner.py for what it learns.
"""
