"""The local OpenAI-compatible backend (`fine_tuning/local_openai/`), in-process and over HTTP."""
