"""Commands listed by name and help, imported when they are used.

``tradepipe --help`` lists every command; importing them all would load what
they need (the ledger's SQLAlchemy, the API's FastAPI, rich) just to print one
line each. A :class:`LazyCommand` stands in for the real command: it knows its
name and target (``"module:attribute"``) and reads its help from the decorated
function's docstring in the module's source, which it parses (the function's
definition alone, when it can) without running it. Running the command, its
``--help`` and completing its options import the module.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from typing import Any

import click
from tradepipe.errors import PluginError

#: Libraries that listing the commands (``--help``, ``--version``) must not import:
#: a command's work needs them, a listing does not. The suite and the start-up
#: benchmark check it.
HEAVY = (
    "alembic",
    "cryptography",
    "exchange_calendars",
    "fastapi",
    "httpx",
    "jwt",
    "rich",
    "sqlalchemy",
    "sqlmodel",
    "starlette",
    "uvicorn",
    "websockets",
)
#: The decorator names that make a click command of a function.
_DECORATORS = ("command", "group")
#: A line that starts a top-level statement (not a signature's closing parenthesis).
_TOP_LEVEL = re.compile(r"^[^\s)]", re.MULTILINE)


class LazyCommand(click.Command):
    """A command imported on first use; register it like any other command.

    :param name: the command's name, as the real command is named.
    :param target: where the real command is, ``"package.module:attribute"``.
    :param help: the help text, when it should not be read from the source.
    """

    def __init__(self, name: str, target: str, *, help: str | None = None) -> None:
        super().__init__(name, help=help)
        self.target = target
        self._command: click.Command | None = None

    def load(self) -> click.Command:
        """The real command, imported on the first call.

        :raises PluginError: the module does not import, or holds no command by
            that name at ``target``.
        """
        if self._command is None:
            module, _, attribute = self.target.partition(":")
            try:
                command = getattr(importlib.import_module(module), attribute)
            except Exception as exc:
                raise PluginError(
                    f"command {self.name!r} ({self.target}) failed to import: {exc}"
                ) from exc
            if not isinstance(command, click.Command) or command.name != self.name:
                raise PluginError(f"{self.target} is not the command {self.name!r}")
            self._command = command
        return self._command

    def get_short_help_str(self, limit: int = 45) -> str:
        if self.help is None and self.short_help is None:
            self.help, self.short_help = self._declared_help()
        return super().get_short_help_str(limit)

    def _declared_help(self) -> tuple[str | None, str | None]:
        module, _, attribute = self.target.partition(":")
        declared = source_help(module, attribute)
        if declared is not None:
            return declared
        try:
            command = self.load()
        except PluginError:
            return None, None  # still listed; running it says what is wrong
        return command.help, command.short_help

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # The context belongs to the real command, so click parses, invokes and
        # completes with it from here on.
        return self.load().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        return self.load().invoke(ctx)

    def to_info_dict(self, ctx: click.Context) -> dict[str, Any]:
        return self.load().to_info_dict(ctx)


def source_help(module: str, function: str) -> tuple[str | None, str | None] | None:
    """Help and short help of the click command ``function`` in ``module``, from its source.

    ``None`` when the source cannot be read or does not define that command.
    The definition alone is parsed when the module's layout shows where it is
    (a blank line before its decorators, its body indented), else the module.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    try:
        with open(spec.origin, encoding="utf-8") as file:
            source = file.read()
    except (OSError, ValueError):
        return None
    for text in (_definition(source, function), source):
        try:
            tree = ast.parse(text or "")
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == function:
                keywords = _command_keywords(node)
                if keywords is not None:
                    help = keywords.get("help") or ast.get_docstring(node, clean=False)
                    return help, keywords.get("short_help")
    return None


def _definition(source: str, function: str) -> str | None:
    """The text of a top-level function with its decorators, cut by layout alone."""
    found = re.search(rf"^def {re.escape(function)}\(", source, re.MULTILINE)
    if found is None:
        return None
    start = source.rfind("\n\n", 0, found.start()) + 1
    after = _TOP_LEVEL.search(source, found.end())
    return source[start : after.start() if after else len(source)]


def _command_keywords(node: ast.FunctionDef) -> dict[str, str] | None:
    """The constant string keywords of a function's command decorator; None if it has none."""
    for decorator in node.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        func = call.func if call is not None else decorator
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in _DECORATORS:
            keywords = call.keywords if call is not None else []
            return {
                k.arg: k.value.value
                for k in keywords
                if k.arg and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
            }
    return None
