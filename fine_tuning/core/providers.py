"""Which provider a run fine-tunes on: `FINE_TUNING_PROVIDER`, chosen explicitly (Dagster-free).

`local` is the shipped backend (in-process, or over HTTP at OPENAI_BASE_URL); `openai` is OpenAI
or any server speaking its API; `azure` is Azure OpenAI at its v1 API. Unset with OPENAI_API_KEY
set means `openai`; unset without a key is an error, so a deployment whose secret is missing can
never quietly train a toy model on the local backend and promote it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PROVIDER_ENV = "FINE_TUNING_PROVIDER"
LOCAL, OPENAI, AZURE = "local", "openai", "azure"
PROVIDERS: tuple[str, ...] = (LOCAL, OPENAI, AZURE)

# Azure OpenAI: where the v1 API lives under a resource's endpoint, and what a run needs.
AZURE_ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"
AZURE_API_KEY_ENV = "AZURE_OPENAI_API_KEY"
AZURE_V1_PATH = "/openai/v1/"


class ProviderError(ValueError):
    """No provider chosen, an unknown one, or a chosen one without the settings it needs."""


def _choices() -> str:
    return (
        f"set {PROVIDER_ENV} to one of: local (the shipped offline backend; over HTTP when OPENAI_BASE_URL "
        "is set), openai (needs OPENAI_API_KEY), azure (needs AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY)"
    )


def chosen_provider(environ: Mapping[str, str] | None = None) -> str:
    """The provider the environment chooses, or `ProviderError` naming the choices."""
    env = os.environ if environ is None else environ
    value = (env.get(PROVIDER_ENV) or "").strip().lower()
    if not value:
        if env.get("OPENAI_API_KEY"):
            return OPENAI
        raise ProviderError(f"No fine-tuning provider chosen and OPENAI_API_KEY is not set: {_choices()}.")
    if value not in PROVIDERS:
        raise ProviderError(f"{PROVIDER_ENV}={value!r} is not a provider: {_choices()}.")
    missing = [name for name in required_settings(value) if not env.get(name)]
    if missing:
        raise ProviderError(f"{PROVIDER_ENV}={value} needs {' and '.join(missing)} in the environment.")
    return value


def required_settings(provider: str) -> tuple[str, ...]:
    """Environment variables a provider cannot run without."""
    if provider == OPENAI:
        return ("OPENAI_API_KEY",)
    if provider == AZURE:
        return (AZURE_ENDPOINT_ENV, AZURE_API_KEY_ENV)
    return ()


def provider_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the environment chooses no usable provider, or None when it does."""
    try:
        chosen_provider(environ)
    except ProviderError as error:
        return str(error)
    return None


def azure_v1_base_url(endpoint: str) -> str:
    """`https://<resource>.openai.azure.com` -> its v1 API base URL (an endpoint already ending in it is kept)."""
    root = endpoint.strip().rstrip("/")
    if root.endswith(AZURE_V1_PATH.rstrip("/")):
        return root + "/"
    return root + AZURE_V1_PATH

