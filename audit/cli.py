"""The ``audit`` command and the one error boundary every CLI of the project shares.

Each subcommand lives in the ``cli.py`` of its own subpackage and is attached here. Exit codes:
0 success / gate passed, 1 gate failed, 2 usage or runtime error, 130 interrupted.

Every error is one line on stderr: library errors, OS errors, and option errors too
(``error: No such option: --jsn (see 'audit scan --help')``, where click would draw a box);
``--help`` stays rich. Messages quote user paths and file names, so they are printed without
markup and with control characters shown as escapes (``audit.report.text``).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import traceback
from typing import NoReturn

# OpenBLAS's idle workers busy-wait for 2^28 cycles (~0.1 s) after each call before sleeping. On a
# busy 2-core machine they take the core that FAISS's threads, the decode processes or the other
# chunk thread need: 16 cycles instead (2^4; the user's own setting wins). 60k Fashion-MNIST PNG
# scan, farm-bench A/B of 7 pairs: CPU 0.91x, wall 0.97x. Set when the CLI module loads, before
# the commands' modules load numpy; the library's other modules leave the environment alone.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import typer  # noqa: E402
import typer.core  # noqa: E402
import typer.exceptions  # noqa: E402
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # noqa: E402

from audit.errors import EXIT_ERROR, EXIT_INTERRUPTED, AuditError  # noqa: E402


class BoundaryGroup(typer.core.TyperGroup):
    """Catches library errors once, for every subcommand: one line on stderr, a documented
    exit code, never a traceback (set ``AUDIT_DEBUG=1`` to see one)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:  # options of the group itself (`audit --bogus`) are parsed here
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as exc:
            _usage(exc)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UsageError as exc:  # a subcommand's options, an unknown subcommand
            _usage(exc)
        except (typer.exceptions.Exit, typer.exceptions.Abort, typer.exceptions.TyperException):
            raise  # --help and Exit (typer >= 0.29 vendors click: these are its classes)
        except AuditError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED)
        except MemoryError:
            _fail("out of memory: try a smaller input, --batch-size or a lower --dim", EXIT_ERROR)
        except OSError as exc:
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            _fail(f"{exc.strerror or exc}{where}", EXIT_ERROR)
        except Exception as exc:  # a bug of ours: still one line, with a way to see more
            if os.environ.get("AUDIT_DEBUG"):
                traceback.print_exc()
            _fail(f"internal error ({type(exc).__name__}: {exc}); rerun with AUDIT_DEBUG=1 for details", EXIT_ERROR)


def _fail(message: str, code: int) -> None:
    from audit.report.text import printable

    line = printable(message)  # one line: a newline or escape sequence in a path cannot add one
    typer.echo(line if code == EXIT_INTERRUPTED else f"error: {line}", err=True)
    raise typer.Exit(code)


def _usage(exc: UsageError) -> None:
    """click's option errors as one line (its rich box took five), with where to get help."""
    if isinstance(exc, NoArgsIsHelpError):
        raise exc  # `audit scan` alone prints the help
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    _fail(exc.format_message() + hint, exc.exit_code)


def new_app(help: str) -> typer.Typer:
    """A typer app whose every subcommand runs inside :class:`BoundaryGroup`."""
    app = typer.Typer(
        cls=BoundaryGroup,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(lambda: None)  # always a group, even while it has one subcommand
    return app


app = new_app(
    "Audit an unlabeled image pool for semi-supervised poisoning: static scan (paper 5.2), "
    "training dynamics (paper 5.3). Exit codes: 0 pass, 1 gate failed, 2 error."
)


@app.command("version")
def version() -> None:
    """Print the version."""
    from audit import __version__

    typer.echo(__version__)


# Subcommands, one per subpackage (each module defines a plain function).
from audit.scan.cli import scan; app.command("scan")(scan)  # noqa: E402,E702
from audit.ssl.cli import train; app.command("train")(train)  # noqa: E402,E702
from audit.dynamics.cli import dynamics; app.command("dynamics")(dynamics)  # noqa: E402,E702


def main() -> None:
    run_and_exit(app, "audit")


def run_and_exit(typer_app: typer.Typer, name: str) -> NoReturn:
    """Run a CLI app, then exit with its status without tearing the interpreter down."""
    try:
        typer_app(prog_name=name)
        code = 0
    except SystemExit as exc:
        code = exc.code
    quick_exit(code)


def quick_exit(code) -> NoReturn:
    """``sys.exit(code)`` without the interpreter's teardown when nothing can be lost by it.

    Teardown frees every module and object one by one: 0.1-0.2 s after a scan (numpy, scipy,
    faiss), for memory the OS takes back at once. It is skipped only when this is the last
    thread (no writer still running) and ``code`` is an int or None; exit handlers run first and
    the standard streams are flushed. Every report, store and image the project writes is
    already closed (atomic writes) before a command returns. Otherwise: the normal exit."""
    if not isinstance(code, (int, type(None))) or isinstance(code, bool) or threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stream: let Python report it as usual
        sys.exit(code)
    os._exit(code or 0)


if __name__ == "__main__":
    sys.exit(main())
