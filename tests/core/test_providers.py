"""The provider switch: FINE_TUNING_PROVIDER chosen explicitly, never a silent local fallback."""

from __future__ import annotations

import pytest

from fine_tuning.core.providers import ProviderError, azure_v1_base_url, chosen_provider, provider_problem


@pytest.mark.parametrize("value", ["local", "openai", "azure", " Local "])
def test_each_named_provider_is_taken_when_its_settings_are_there(value: str) -> None:
    env = {"FINE_TUNING_PROVIDER": value, "OPENAI_API_KEY": "sk-x",
           "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "AZURE_OPENAI_API_KEY": "k"}
    assert chosen_provider(env) == value.strip().lower()


def test_unset_with_an_openai_key_means_openai() -> None:
    assert chosen_provider({"OPENAI_API_KEY": "sk-x"}) == "openai"


def test_unset_without_a_key_is_an_error_naming_every_choice() -> None:
    with pytest.raises(ProviderError) as raised:
        chosen_provider({})
    message = str(raised.value)
    assert "FINE_TUNING_PROVIDER" in message and "OPENAI_API_KEY is not set" in message
    for choice in ("local", "openai", "azure"):
        assert choice in message


def test_an_unknown_provider_is_refused_by_name() -> None:
    assert "'azur' is not a provider" in (provider_problem({"FINE_TUNING_PROVIDER": "azur"}) or "")


def test_a_chosen_provider_without_its_settings_says_which_are_missing() -> None:
    assert provider_problem({"FINE_TUNING_PROVIDER": "openai"}) == (
        "FINE_TUNING_PROVIDER=openai needs OPENAI_API_KEY in the environment.")
    problem = provider_problem({"FINE_TUNING_PROVIDER": "azure", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"})
    assert problem == "FINE_TUNING_PROVIDER=azure needs AZURE_OPENAI_API_KEY in the environment."
    assert provider_problem({"FINE_TUNING_PROVIDER": "local"}) is None


@pytest.mark.parametrize("endpoint", ["https://r.openai.azure.com", "https://r.openai.azure.com/",
                                      "https://r.openai.azure.com/openai/v1", "https://r.openai.azure.com/openai/v1/"])
def test_the_azure_v1_base_url_is_under_the_endpoint(endpoint: str) -> None:
    assert azure_v1_base_url(endpoint) == "https://r.openai.azure.com/openai/v1/"
