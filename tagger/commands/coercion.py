"""Option values without pydantic: Typer 0.29 coerces every parameter through a pydantic TypeAdapter
built when the command runs (importing pydantic and building a dozen adapters: 0.15 s of every
command). `plain_coercion` gives a command's parameters a coercion that turns the values moodtag's
options take (text, whole and decimal numbers, choices, paths through a parser) into what Typer's
would, and hands every other value, and every value it cannot take, to Typer's own coercion, so that
errors read exactly as before; but NaN given to a number option with bounds (`--min-confidence nan`),
which Typer's says should be "less than or equal to 1", is refused here as not a number between them,
and a value that is none of an option's choices (`--order foo`) in the words of scan's --device ("'foo'
is not one of path, artist, ..."), not Typer's ("Value error, 'foo' is not one of 'path', 'artist', ...").
On a Typer without this machinery it changes nothing.
"""
from __future__ import annotations

import math
import re
from enum import Enum
from typing import Any, Callable

_WHOLE = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_REFUSED = object()  # a value the plain coercion leaves to Typer's


def plain_coercion(params) -> None:
    """Give each Typer parameter of a command that has no coercion yet the plain one (`PlainCoercion`)."""
    for param in params:
        if getattr(param, "_runtime_param", False) is None and hasattr(param, "type_descriptor"):
            param._runtime_param = PlainCoercion(param.type_descriptor)


class PlainCoercion:
    """Typer's RuntimeParam contract (`coerce(value, param, ctx)`) for plain annotations; see the module."""

    def __init__(self, descriptor) -> None:
        self.descriptor = descriptor
        self._typer = None
        self.convert = _converter(descriptor)

    def coerce(self, value: Any, param, ctx) -> Any:
        if value is None:  # as Typer's RuntimeParam.coerce
            return () if param.multiple or param.nargs == -1 else None
        result = _REFUSED if self.convert is None else self.convert(value, ctx)
        if result is _REFUSED:
            return self.typer_coercion().coerce(value, param=param, ctx=ctx)
        return result

    def typer_coercion(self):
        """Typer's own coercion of this parameter (built on first use: it imports pydantic)."""
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(self.descriptor)
        return self._typer


def _converter(descriptor) -> Callable[[Any, Any], Any] | None:
    """value, ctx -> the coerced value or _REFUSED; None when every value goes to Typer."""
    if descriptor.file_annotation is not None:
        return None
    annotation, info = descriptor.annotation, descriptor.parameter_info
    parser = info.parser
    if parser is not None:
        if getattr(annotation, "__origin__", None) is list:
            return lambda value, ctx: _refusing(lambda: [parser(item) for item in (
                value if isinstance(value, (list, tuple)) else [value])])
        return lambda value, ctx: _refusing(lambda: parser(value))
    if annotation is str:
        return lambda value, ctx: value if type(value) is str else _REFUSED
    if annotation is int or annotation is float:
        if info.clamp:
            return None
        pattern = _WHOLE if annotation is int else _DECIMAL
        low, high = info.min, info.max

        def number(value, ctx):
            if type(value) is str and pattern.fullmatch(value):
                value = annotation(value)
            elif annotation is float and (low is not None or high is not None) and _is_nan(value):
                from typer import BadParameter

                raise BadParameter(f"{value!r} is not a number {_range_words(low, high)}", ctx=ctx)
            if type(value) is not annotation or (low is not None and value < low) or (high is not None and value > high):
                return _REFUSED
            return value
        return number
    if _is_enum(annotation):
        return _choice_converter(tuple(annotation), info.case_sensitive)
    if getattr(annotation, "__origin__", None) is list and _is_enum(annotation.__args__[0]):
        choice = _choice_converter(tuple(annotation.__args__[0]), info.case_sensitive)
        return lambda value, ctx: [choice(item, ctx) for item in value] if isinstance(value, (list, tuple)) else _REFUSED
    return None


def _is_enum(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Enum)


def _choice_converter(choices: tuple[Enum, ...], case_sensitive: bool) -> Callable[[Any, Any], Any]:
    """value, ctx -> the choice it names; one that names none is refused in --device's words ("'foo' is not
    one of cpu, cuda, auto"), not Typer's ("Value error, 'foo' is not one of 'cpu', 'cuda', 'auto'.")."""
    from typer._param_types import coerce_cli_choice

    def choice(value, ctx):
        try:
            return coerce_cli_choice(value, choices=choices, case_sensitive=case_sensitive, ctx=ctx)
        except ValueError:
            from typer import BadParameter

            raise BadParameter(f"{value!r} is not one of {', '.join(str(c.value) for c in choices)}", ctx=ctx) from None
    return choice


def _is_nan(value) -> bool:
    """Whether `value` (a float, or text such as 'nan' or 'NaN') is NaN: Typer's coercion takes it and then
    says it should be less than or equal to the maximum, as if it were too large."""
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _range_words(low, high) -> str:
    """'between 0 and 1', 'of at least 0', 'of at most 1'."""
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    return f"of at least {low:g}" if low is not None else f"of at most {high:g}"


def _refusing(convert: Callable[[], Any]) -> Any:
    try:
        return convert()
    except Exception:  # Typer's coercion runs it again and words the error as it always did
        return _REFUSED
