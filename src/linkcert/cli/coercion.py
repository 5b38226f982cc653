"""Plain command-line values converted without Pydantic.

Typer converts every argument and option with a Pydantic `TypeAdapter` built when the command
runs. Importing Pydantic and building the adapters costs a short command about a third of its
start-up, though nearly all of linkcert's parameters are plain: text, a list of text, a whole or
decimal number, a file path. `install()` puts a converter in front of Typer's: for those plain
types and plain values it gives the value Typer's adapter would give, and it hands anything
else (another type, constraints, a value in an unusual form such as `1e3`) to Typer's own
conversion, so messages and results stay Typer's. A test compares the two on many values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

if TYPE_CHECKING:
    from typer._click import Context
    from typer._coercion import RuntimeParam, TypeDescriptor
    from typer.core import _TyperParameter

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


class _NotPlain(Exception):
    """A value for Typer's own conversion."""


Convert = Callable[[Any, "_TyperParameter", "Context"], Any]


def _text(value: Any, _param: Any, _ctx: Any) -> Any:
    if not isinstance(value, str):
        raise _NotPlain
    return value


def _texts(value: Any, _param: Any, _ctx: Any) -> Any:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _NotPlain
    return list(value)


def _integer(value: Any, _param: Any, _ctx: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    raise _NotPlain


def _decimal(value: Any, _param: Any, _ctx: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return float(value)
    raise _NotPlain


def _flag(value: Any, _param: Any, _ctx: Any) -> Any:
    if not isinstance(value, bool):
        raise _NotPlain
    return value


def _converter(descriptor: TypeDescriptor) -> Convert | None:
    """A converter for the parameter's plain values, or None for Typer's conversion only."""
    info = descriptor.parameter_info
    annotation: Any = descriptor.annotation
    if descriptor.file_annotation is not None or info.parser is not None or descriptor.is_choice:
        return None
    if annotation is str:
        return _text
    if annotation is bool:
        return _flag
    if get_origin(annotation) is list and get_args(annotation) == (str,):
        return _texts
    if annotation in (int, float):
        if info.min is not None or info.max is not None or info.clamp:
            return None
        return _integer if annotation is int else _decimal
    if annotation is Path and info.path_type is None:
        return _path
    return None


def _path(value: Any, param: _TyperParameter, ctx: Context) -> Any:
    from typer._param_types import coerce_cli_path

    if not isinstance(value, str | Path) or value in ("", "-"):
        raise _NotPlain
    # Typer's own checks (exists, file or directory, readable...), given the value as a Path.
    return coerce_cli_path(
        Path(value), param.type_descriptor.parameter_info, path_type=Path, param=param, ctx=ctx
    )


def install() -> None:
    """Put the plain converters in front of Typer's conversion (once; idempotent)."""
    import typer.core
    from typer._coercion import RuntimeParam

    # typer.core looks the function up in its namespace at each use: replace it there.
    namespace = vars(typer.core)
    typer_build: Callable[[TypeDescriptor], RuntimeParam] = namespace["build_runtime_param"]
    if getattr(typer_build, "linkcert_plain", False):
        return

    @dataclass(frozen=True)
    class PlainParam(RuntimeParam):
        convert: Convert
        descriptor: TypeDescriptor

        def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
            try:
                return self.convert(value, param, ctx)
            except _NotPlain:
                return typer_build(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def build(descriptor: TypeDescriptor) -> RuntimeParam:
        convert = _converter(descriptor)
        if convert is None:
            return typer_build(descriptor)
        return PlainParam(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            convert=convert,
            descriptor=descriptor,
        )

    build.linkcert_plain = True  # type: ignore[attr-defined]
    namespace["build_runtime_param"] = build
