"""How `--help` looks: click's plain layout (wrapped to the terminal, at most 78 columns, never cut, the
same on a terminal and in a pipe), with arguments shown by name (`PATH...`, `[PATH...]`) and no type
placeholders."""
from __future__ import annotations

from typer.core import TyperCommand, TyperGroup


class PlainCoercionMixin:
    """Option values coerced without pydantic where Typer's result is plain (tagger/commands/coercion.py)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        from tagger.commands.coercion import plain_coercion

        plain_coercion(self.get_params(ctx))  # pydantic and its adapters: 0.15 s of every command
        return super().parse_args(ctx, args)


class MoodtagGroup(PlainCoercionMixin, TyperGroup):
    """The `moodtag` command group (its own options: --help)."""


class HelpCommand(PlainCoercionMixin, TyperCommand):
    """A Typer command whose usage line and Arguments section name each argument once: `PATH...` when
    it is required and takes several, `[MODEL]` when it may be left out; its option values are
    coerced without pydantic where Typer's result is plain (tagger/commands/coercion.py)."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [argument_name(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]

    def format_options(self, ctx, formatter) -> None:
        arguments = [(argument_name(p), p.help or "") for p in self.get_params(ctx)
                     if p.param_type_name == "argument" and not p.hidden]
        options = [p.get_help_record(ctx) for p in self.get_params(ctx) if p.param_type_name == "option"]
        for title, rows in (("Arguments", arguments), ("Options", [r for r in options if r])):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def argument_name(param) -> str:
    """PATH, PATH..., [MODEL] or [PATH...]: the metavar (or upper-case name), '...' when it takes
    several values, in brackets when it may be left out."""
    name = (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")
    return name if param.required else f"[{name}]"
