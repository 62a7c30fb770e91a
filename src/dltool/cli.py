"""The ``dltool`` command: composes one module per subcommand, translates errors at the edge.

Importing this module must never import torch (``dltool --help`` stays fast): command
modules import the library layer inside their functions.
"""

from __future__ import annotations

import gc
import inspect
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from dltool._env import check_switches, env_flag
from dltool._signals import Terminated, heed_interrupts
from dltool._version import __version__
from dltool.commands import download as download_command
from dltool.commands import eval as eval_command
from dltool.commands import export as export_command
from dltool.commands import list as list_command
from dltool.commands import predict as predict_command
from dltool.commands import stats as stats_command
from dltool.commands import summary as summary_command
from dltool.commands import train as train_command
from dltool.commands import tune as tune_command
from dltool.commands import visualize as visualize_command
from dltool.commands._output import animates, data_in_utf8, error_message, report_error, say
from dltool.commands._usage import add_hint
from dltool.errors import DltoolError, ReadOnlyError, UnreadableError

# Errors that input can still cause past validation (a size no memory can hold, a nest too
# deep for the recursion limit): one line like a DltoolError. Anything else is a bug.
EXPECTED = (DltoolError, OSError, OverflowError, MemoryError, RecursionError)
# typer's and click's own ways out: exit codes, usage errors, an aborted prompt. typer ≥ 0.29
# carries its own copy of click, whose errors (an option below its `min`) derive from
# TyperException, not from click's ClickException.
CLICK_EXITS = (
    typer.Exit,
    typer.Abort,
    typer.TyperException,
    click.exceptions.Exit,
    click.exceptions.ClickException,
    click.exceptions.Abort,
)


class DltoolGroup(TyperGroup):
    """Turns a ``DltoolError`` (or an OS error such as a full disk) into one line on stderr
    and its exit code: 2 for usage errors, 1 for failures; any other error into an "internal
    error" line. ``--debug`` adds the traceback."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        with _plain_usage_errors():  # `dltool --bogus`
            return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            with _plain_usage_errors():  # `dltool train --bogus`, `dltool tarin`
                return super().invoke(ctx)
        except CLICK_EXITS:
            raise
        except BrokenPipeError:  # `predict RUN photos/ | head`: done, as the reader has its rows (exit 0, not 1)
            _stop_writing()
            raise typer.Exit(0) from None
        except EXPECTED as error:
            raise typer.Exit(_reported(ctx, error)) from None
        except Exception as error:
            _report(
                ctx,
                "internal error",
                f"{type(error).__name__}: {_first_line(error)} (rerun with --debug for the traceback)",
            )
            raise typer.Exit(1) from None


@contextmanager
def _plain_usage_errors() -> Iterator[None]:
    """click's usage errors (an unknown option, a missing argument) as plain lines where
    stderr is no terminal (a pipe, a CI log), as dltool's own errors are: typer draws them in
    a box. Help asked for by no arguments is already shown."""
    try:
        yield
    except (typer.TyperException, click.exceptions.ClickException) as error:
        add_hint(error)
        if animates() or not hasattr(error, "show") or type(error).__name__ == "NoArgsIsHelpError":
            raise
        if (ctx := getattr(error, "ctx", None)) is not None:
            say(ctx.get_usage())
            say(f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.")
        report_error("error", error.format_message())
        raise typer.Exit(getattr(error, "exit_code", 2)) from None


# The option that puts each command's outputs elsewhere, for a write a read-only filesystem refused.
OUTPUT_OPTIONS = {
    "train": "--runs-dir DIR",
    "tune": "--runs-dir DIR",
    "visualize": "--out DIR",
    "export": "--output FILE",
    "predict": "--output FILE",
    "eval": "--per-class-out FILE",
    "download": "--root DIR",
}


def _reported(ctx: Any, error: BaseException) -> int:
    """Report ``error`` with its next step; its exit code. A function of its own so that no
    frame the exit's traceback keeps holds the error: one held in a local (as ``except ... as``
    names are not) makes a cycle through its traceback that only the garbage collector breaks,
    which dltool skips at exit, so a stream loader's worker processes stayed alive under the
    dead frames and the interpreter's exit waited on them for ever."""
    told = _with_next_step(error, ctx.invoked_subcommand)
    _report(ctx, "error", error_message(told))
    return int(getattr(told, "exit_code", 1))


def _with_next_step(error: BaseException, command: str | None) -> BaseException:
    """A write or read refused as one that names its folder or file and what to do, not as
    "[Errno 30] Read-only file system: '.x.tmp'" or "[Errno 13] Permission denied: ..."."""
    if ReadOnlyError.caused(error):
        return ReadOnlyError.of(error, _elsewhere(command))
    if UnreadableError.caused(error):
        assert isinstance(error, OSError)
        return UnreadableError(error)
    return error


def _elsewhere(command: str | None) -> str:
    option = OUTPUT_OPTIONS.get(command or "")
    return f"write to a folder you can write ({option})" if option else "write to a folder you can write"


def _stop_writing() -> None:
    """What is still buffered for stdout goes nowhere instead of failing again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _report(ctx: Any, label: str, message: str) -> None:
    if (ctx.obj or {}).get("debug"):
        traceback.print_exc()
    report_error(label, message)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


app = typer.Typer(
    name="dltool",
    cls=DltoolGroup,
    help="Train, tune, evaluate and use PyTorch image models.\n\n"
    "Example: RUN=$(dltool train digits-mlp) — trains on the embedded digits and prints the run dir.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        print(f"dltool {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors (or $DLTOOL_DEBUG=1).")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    ctx.obj = {"debug": debug}  # first: a malformed $DLTOOL_DEBUG is reported like any other error
    ctx.obj["debug"] = debug or env_flag("DLTOOL_DEBUG")
    check_switches()


def _short_help(command: Callable[..., Any]) -> str:
    """The first paragraph of ``command``'s docstring as one line, for `dltool --help`'s list
    (typer keeps its line breaks there, wherever the source wrapped it)."""
    return " ".join(inspect.cleandoc(command.__doc__ or "").split("\n\n")[0].split())


COMMANDS: dict[str, Callable[..., Any]] = {
    "list": list_command.list_,
    "download": download_command.download,
    "stats": stats_command.stats,
    "summary": summary_command.summary,
    "train": train_command.train,
    "tune": tune_command.tune,
    "eval": eval_command.eval_,
    "predict": predict_command.predict,
    "export": export_command.export,
    "visualize": visualize_command.visualize,
}
for name, command in COMMANDS.items():
    app.command(name, short_help=_short_help(command))(command)


def main() -> None:
    # Pillow warns of each malformed metadata tag it skips in a photo's EXIF (or a TIFF's tags),
    # naming neither the file nor a consequence, again in every thread and worker: a flood over
    # a folder of phone photos. Decoding reads only the orientation; an unreadable tag is
    # skipped either way.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")
    data_in_utf8()
    try:
        heed_interrupts()  # a background job's `kill -INT` while the command starts is not lost
        # A fixed name: `python -m dltool` and torchrun would otherwise call it "python -m dltool",
        # and `--show-completion` would write a script for that.
        app(prog_name="dltool")
    except KeyboardInterrupt:  # Ctrl-C while the command line is still being read: nothing to save
        raise SystemExit(128 + signal.SIGINT) from None
    except Terminated:  # its outputs' temporary files are gone with the stack it unwound
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        # The interpreter's last garbage collection walks every object torch (and the torch._dynamo
        # that torch.optim imports) created: 0.7-0.9 s of a 5 s `dltool train digits-mlp` on 2 cores.
        # Frozen objects are skipped there; everything else about exiting (atexit, flushing files,
        # finalizers, workers' shutdown) is unchanged. Under torchrun ($RANK) the run's cycles are
        # collected now instead, while the interpreter is whole: DDP's reducer holds the gloo
        # process group, and freeing it in the interpreter's teardown aborted a rank in 2 of 12
        # runs ("terminate called without an active exception", its worker threads unjoined).
        if "RANK" in os.environ:
            gc.collect()
        else:
            gc.freeze()
