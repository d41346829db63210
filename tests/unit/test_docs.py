"""The README documents every setting and every endpoint the code has."""

from __future__ import annotations

from pathlib import Path

from shared.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [f"ENGRAM_{name.upper()}" for name in Settings.model_fields if f"`ENGRAM_{name.upper()}`" not in README]
    assert missing == []


def test_every_endpoint_has_an_openapi_description() -> None:
    from api.main import create_app

    app = create_app(Settings(database_url="postgresql+psycopg://u@127.0.0.1:1/x", redis_url="redis://127.0.0.1:1/0",
                              admin_key="x", webhook_secrets_key="w"))
    undocumented = [f"{m.upper()} {p}" for p, ops in app.openapi()["paths"].items() for m, op in ops.items()
                    if not op.get("description") and not op.get("summary")]
    assert undocumented == []
    for path in app.openapi()["paths"]:
        words = [seg for seg in path.split("/") if seg and not seg.startswith("{")]
        assert f"/{words[-1]}" in README, f"{path} is not in the README"
