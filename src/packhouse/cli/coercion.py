"""Typer's argument coercion for the plain types our commands take, without pydantic.

Typer 0.2x turns every command-line value into its annotated type through a pydantic
`TypeAdapter` made per parameter: the first command argument a run parses imports pydantic
and builds its schemas (about 0.1 s of a `packhouse conda index` or `user list` that takes a
few tenths). Our parameters are `str`, `Path`, `int`, `bool`, enums and lists of those, so for the
ordinary values of those this module gives Typer the same results by the same code Typer's
adapters call (`coerce_cli_path`, `coerce_cli_choice`). Anything else (ranges, other types,
a value that is not already plain, such as `./x` for a Path or ` 7` for an int) and every
refusal go to Typer's own coercion, built on first need: results and error messages are
Typer's by construction (tests/test_cli_coercion.py compares the two on a corpus).

A Typer without `typer.core.build_runtime_param` (older ones coerce through click types, with
no pydantic) is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any, get_args, get_origin

__all__ = ["install"]

_INT = re.compile(r"-?[0-9]+")


class _Typers:
    """Typer's own coercion, kept by `install`."""

    build: Callable[[Any], Any] | None = None


def install() -> None:
    """Route Typer's coercion of plain values through `_build` (once per process)."""
    try:
        from typer import _coercion, _param_types, core
    except ImportError:
        return
    original = getattr(core, "build_runtime_param", None)
    if original is None or original is not getattr(_coercion, "build_runtime_param", None):
        return  # another Typer, or installed already
    runtime = getattr(_coercion, "RuntimeParam", None)
    helpers = ("coerce_cli_choice", "coerce_cli_path", "routes_to_path")
    if (
        runtime is None
        or {f.name for f in fields(runtime)} != {"parameter_info", "annotation"}
        or not all(hasattr(_param_types, name) for name in helpers)
    ):
        return  # a Typer whose coercion is shaped otherwise keeps its own
    _Typers.build = original
    core.build_runtime_param = _build  # type: ignore[attr-defined]


class _Slow(Exception):
    """This value goes to Typer's own coercion."""


def _leaf(annotation: Any, info: Any) -> Callable[[Any, Any, Any], Any] | None:
    """A pydantic-free coercion of one value that equals Typer's, or None to use Typer's."""
    from typer._param_types import coerce_cli_choice, coerce_cli_path, routes_to_path

    if info.parser is not None:
        return None
    if annotation is str:

        def text(value: Any, param: Any, ctx: Any) -> Any:
            if type(value) is not str:
                raise _Slow
            return value

        return text
    if annotation is bool:  # a flag is a bool already (Typer skips it); `--help` unset is None

        def flag(value: Any, param: Any, ctx: Any) -> Any:
            if type(value) is not bool:
                raise _Slow
            return value

        return flag
    if annotation is int:
        if info.min is not None or info.max is not None:
            return None

        def number(value: Any, param: Any, ctx: Any) -> Any:
            if type(value) is int:
                return value
            if type(value) is not str or not _INT.fullmatch(value):
                raise _Slow
            return int(value)

        return number
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        choices = list(annotation)

        def choice(value: Any, param: Any, ctx: Any) -> Any:
            try:
                return coerce_cli_choice(
                    value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx
                )
            except ValueError:  # Typer words the refusal
                raise _Slow from None

        return choice
    if annotation is Path and info.path_type is None and not info.allow_dash:
        if not routes_to_path(annotation, info):
            return None

        def path(value: Any, param: Any, ctx: Any) -> Any:
            # pydantic makes Path(value) of a str; where str(Path(value)) is the value itself
            # the messages, which name the value, read the same either way
            if type(value) is str and str(Path(value)) == value:
                value = Path(value)
            if not isinstance(value, Path):
                raise _Slow
            return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)

        return path
    return None


def _build(descriptor: Any) -> Any:
    assert _Typers.build is not None
    if descriptor.file_annotation is not None:
        return _Typers.build(descriptor)
    info = descriptor.parameter_info
    annotation = descriptor.annotation
    if get_origin(annotation) is list and len(get_args(annotation)) == 1:
        item = _leaf(get_args(annotation)[0], info)
        coerce = None if item is None else _each(item)
    else:
        coerce = _leaf(annotation, info)
    if coerce is None:
        return _Typers.build(descriptor)
    return _plain()(parameter_info=info, annotation=annotation, fast=coerce, descriptor=descriptor)


@cache
def _plain() -> type:
    from typer._coercion import RuntimeParam

    @dataclass(frozen=True)
    class Plain(RuntimeParam):
        fast: Callable[[Any, Any, Any], Any]
        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return self.fast(value, param, ctx)
            except _Slow:
                assert _Typers.build is not None
                typers = _Typers.build(self.descriptor)
                return typers._coerce_value(value, param=param, ctx=ctx)

    return Plain


def _each(item: Callable[[Any, Any, Any], Any]) -> Callable[[Any, Any, Any], Any]:
    def coerce(value: Any, param: Any, ctx: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise _Slow
        return [item(v, param, ctx) for v in value]

    return coerce
