"""The local OpenAI-compatible backend (`local_openai/`), in-process and over HTTP."""
