"""The CLI's click group: our errors and click's usage errors become one line on stderr and exit status 2, and
SIGTERM and SIGHUP unwind like an exception so that temporary files are removed."""

from __future__ import annotations

import signal
import sys

import click

from heart_sr_tf.errors import HeartSRError, UsageError
from heart_sr_tf.path_text import one_line, printable_streams
from heart_sr_tf.startup import import_tensorflow_quietly

LAZY_TENSORFLOW = {"upscale", "phantoms", "cohort"}  # these import TensorFlow themselves, only when they need it


class _Terminated(SystemExit):
    """SIGTERM or SIGHUP, unwinding: its line is said once every ``finally`` has run (a progress bar closed, a
    cluster stopped), so that it is the command's last."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.line = "terminated" if signum == signal.SIGTERM else "terminated: the terminal closed (SIGHUP)"


def _terminate(signum, frame):
    """SIGTERM (and SIGHUP: the ssh session or terminal that ran the command closed) unwinds like an exception, so
    every ``finally`` removes its temporary files and releases its folder's lock."""
    raise _Terminated(signum)


def _unwind_on_termination() -> None:
    """SIGTERM, and SIGHUP unless the command runs under nohup (which ignores it: it must go on), unwind."""
    signal.signal(signal.SIGTERM, _terminate)
    hangup = getattr(signal, "SIGHUP", None)  # (not on Windows)
    if hangup is not None and signal.getsignal(hangup) is signal.SIG_DFL:
        signal.signal(hangup, _terminate)


def warn(line: str) -> None:
    """A warning line on stderr: one line, a file name's line break in it escaped."""
    click.echo(one_line(line), err=True)


def empty_value(args: list[str], flags: frozenset[str] = frozenset()) -> str | None:
    """What an empty value on the command line belongs to (``--scheduler``, or the argument's place), or None.
    Click takes ``--scheduler ""`` as no scheduler (a local cluster instead of the lab's) and a path ``""`` as the
    current folder: what a script's unset variable gives, and never what was meant. After one of ``flags`` (which
    take no value: ``--measure``), the empty value is an argument's."""
    for i, token in enumerate(args):
        if token.startswith("--") and token.endswith("=") and len(token) > 3:
            return token[:-1]
        if token == "":
            before = args[i - 1] if i > 0 else ""
            if before.startswith("--") and "=" not in before and before not in flags:
                return before
            words = " ".join(args[:i])
            return f"the argument after {words!r}" if words else "the first argument"
    return None


def flag_names(group: click.Group, args: list[str]) -> frozenset[str]:
    """The options that take no value (``--measure``, ``--quiet``) of the command ``args`` name, and of the groups
    on the way to it."""
    commands = [group]
    for token in args:
        last = commands[-1]
        if not isinstance(last, click.Group) or token.startswith("-"):
            continue
        if token not in last.commands:
            break
        commands.append(last.commands[token])
    return frozenset(
        name
        for command in commands
        for param in command.params
        if isinstance(param, click.Option) and param.is_flag
        for name in (*param.opts, *param.secondary_opts)
    )


class Group(click.Group):
    """A click group that turns our errors and click's usage errors into one line on stderr and exit status 2."""

    def main(self, args=None, prog_name=None, **extra):
        printable_streams()
        given = sys.argv[1:] if args is None else [str(arg) for arg in args]
        if (empty := empty_value(given, flag_names(self, given))) is not None:
            click.echo(f"error: {empty}: an empty value (an unset shell variable?); give one or leave it out", err=True)
            sys.exit(2)
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # `cli.py`, `cli.py train`: the help, not an error line
            click.echo(exc.format_message(), err=True)
            sys.exit(2)
        except click.UsageError as exc:
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            click.echo(one_line(f"error: {where}{exc.format_message()}"), err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(one_line(f"error: {exc.format_message()}"), err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except ModuleNotFoundError as exc:  # a broken install (optional extras are checked by their commands)
            click.echo(
                f"error: {exc.name or exc} is not installed in {sys.executable}; reinstall heart-sr-tf "
                "(pip install -e . in the project folder)",
                err=True,
            )
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        _unwind_on_termination()
        try:
            return super().invoke(ctx)
        except _Terminated as stop:
            try:
                click.echo(stop.line, err=True)
            except OSError:  # (no terminal left to say it to)
                pass
            raise
        except UsageError as exc:
            name = ctx.invoked_subcommand or ""
            click.echo(one_line(f"error: {ctx.command_path} {name}: {exc}".replace("  ", " ")), err=True)
            sys.exit(2)
        except HeartSRError as exc:
            click.echo(one_line(f"error: {exc}"), err=True)
            sys.exit(2)
        except Exception as exc:
            if type(exc).__name__ != "DataLossError":  # TensorFlow's: a truncated record file
                raise
            message = str(exc).splitlines()[0][:200]
            click.echo(
                f"error: a data file is truncated or corrupt ({message}); rebuild it (prepare --force)", err=True
            )
            sys.exit(2)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if name not in LAZY_TENSORFLOW and not ctx.params.get("verbose"):  # (the group's callback runs later)
            import_tensorflow_quietly()
        return name, command, rest
