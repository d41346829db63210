"""Plug-ins named by a dotted path in a setting (``package.module:factory``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def load_factory(path: str, setting: str, options: str) -> Callable[..., object]:
    """The callable at ``path``; ValueError naming the setting and the options when it is not one."""

    def invalid(why: str) -> ValueError:
        return ValueError(f"{setting}={path!r}: {why}. Use {options}.")

    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr or not all(p.isidentifier() for p in [*module_name.split("."), *attr.split(".")]):
        raise invalid("not a known choice nor a dotted path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise invalid(f"cannot import module {module_name!r} ({exc})") from exc
    factory: object = module
    for part in attr.split("."):  # `module:Class.create` style attributes work too
        try:
            factory = getattr(factory, part)
        except AttributeError:
            raise invalid(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(factory):
        raise invalid(f"{attr!r} in {module_name!r} is not callable")
    return factory
