"""load_integrator: builtin, openai, a dotted path to your own factory, or a clear error."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from shared.config import Settings
from shared.integrators import InsightDraft, Integrator, Reflection, load_integrator
from shared.integrators.builtin import BuiltinIntegrator
from shared.integrators.openai import OpenAIIntegrator


class EchoIntegrator:
    """A toy integrator built by the factory below."""

    name = "echo"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def reflect(self, reflection: Reflection) -> list[InsightDraft]:
        return [InsightDraft(content=t.content, importance=5, evidence=[t.seq]) for t in reflection.turns]


def make_echo(settings: Settings) -> Integrator:
    return EchoIntegrator(settings)


def not_an_integrator(settings: Settings) -> object:
    return object()


NOT_CALLABLE = 42


def _settings(**kwargs: Any) -> Settings:
    # _env_file=None: the test must not depend on a developer's .env.
    return Settings(_env_file=None, **kwargs)


def test_builtin() -> None:
    integrator = load_integrator(_settings(integrator="builtin"))
    assert isinstance(integrator, BuiltinIntegrator)
    assert integrator.name == "builtin"


def test_openai_from_settings() -> None:
    integrator = load_integrator(
        _settings(
            integrator="openai",
            llm_base_url="http://127.0.0.1:9/v1/",
            llm_model="test-model",
            llm_api_key=SecretStr("sk-secret"),
            llm_timeout_seconds=7.5,
            llm_max_retries=2,
        )
    )
    assert isinstance(integrator, OpenAIIntegrator)
    assert integrator.name == "openai"
    assert integrator.url == "http://127.0.0.1:9/v1/chat/completions"
    assert integrator.model == "test-model"
    assert integrator.endpoint.timeout == 7.5
    assert integrator.endpoint.max_retries == 2
    assert "sk-secret" not in repr(integrator)
    integrator.close()


@pytest.mark.parametrize("separator", [":", "."])
def test_dotted_path_to_factory(separator: str) -> None:
    settings = _settings(integrator=f"{__name__}{separator}make_echo")
    integrator = load_integrator(settings)
    assert isinstance(integrator, EchoIntegrator)
    assert integrator.settings is settings
    assert integrator.name == "echo"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "gpt",
        "no_such_module_xyz:factory",
        f"{__name__}:missing_factory",
        f"{__name__}:NOT_CALLABLE",
        f"{__name__}:not_an_integrator",
        "bad path:factory",
    ],
)
def test_invalid_name(name: str) -> None:
    with pytest.raises(ValueError) as info:
        load_integrator(_settings(integrator=name))
    message = str(info.value)
    assert "builtin" in message and "openai" in message and "package.module:factory" in message
