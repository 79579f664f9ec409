"""The ``cryoglass`` command line: one module per command under ``cryoglass/cli``.

Command modules import only typer at module level; torch, matplotlib and the science modules
are imported inside the command bodies so that ``cryoglass --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer
from typer.core import TyperGroup

from cryoglass.cli.options import rewrite_aliases


class _Commands(TyperGroup):
    """The command group; hidden option spellings (``cli/options.py``) are rewritten first."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, rewrite_aliases(args))


app = typer.Typer(
    name="cryoglass",
    cls=_Commands,
    help=(
        "cryoglass: single-particle cryo-EM in a glass box. Every command has --help with examples."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

#: (command name, module under cryoglass.cli); each module defines either ``main`` (a single
#: command; its docstring's first line is the one-line purpose shown by ``cryoglass --help``) or
#: ``app`` (a ``typer.Typer`` with sub-commands, e.g. ``cryoglass vae train``).
COMMANDS: tuple[tuple[str, str], ...] = (
    ("demo", "demo"),
    ("project", "project"),
    ("simulate", "simulate"),
    ("simulate-movies", "simulate_movies"),
    ("motioncorr", "motioncorr"),
    ("extract", "extract"),
    ("reconstruct", "reconstruct"),
    ("class2d", "class2d"),
    ("refine3d", "refine3d"),
    ("class3d", "class3d"),
    ("abinitio", "abinitio"),
    ("select", "select"),
    ("ctf", "ctf"),
    ("ctffind", "ctffind"),
    ("select-micrographs", "select_micrographs"),
    ("pick", "pick"),
    ("fsc", "fsc"),
    ("postprocess", "postprocess"),
    ("filter", "filter"),
    ("mask", "mask"),
    ("resample", "resample"),
    ("localres", "localres"),
    ("orientations", "orientations"),
    ("3dfsc", "fsc3d"),
    ("plan-orientations", "plan_orientations"),
    ("nma", "nma"),
    ("nma-dataset", "nma_dataset"),
    ("vae", "vae"),
    ("stack", "stack"),
    ("convert", "convert"),
    ("serve", "serve"),
    ("lessons", "lessons"),
)


def _version(value: bool) -> None:
    if value:
        from cryoglass import __version__

        typer.echo(f"cryoglass {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """cryoglass: single-particle cryo-EM in a glass box. Every command has --help with examples."""
    from cryoglass.io.outputs import command_scope

    # Every file io's readers open while the command runs is recorded as an input, and the
    # atomic writers refuse to replace one (docs/reliability.md).
    ctx.with_resource(command_scope())


for _name, _module in COMMANDS:
    _mod = importlib.import_module(f"cryoglass.cli.{_module}")
    if isinstance(getattr(_mod, "app", None), typer.Typer):
        app.add_typer(_mod.app, name=_name)
    else:
        app.command(_name)(_mod.main)


def _terminated(signum, frame) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so temporary files are removed on the way out."""
    raise SystemExit(128 + signum)


def run() -> None:
    """Entry point of the ``cryoglass`` console script.

    Before the command runs, glibc is told to keep freed heap memory for reuse
    (:func:`cryoglass._allocator.tune_allocator`): batched commands then stop page-faulting the
    same work buffers back in for every batch (one reconstruct batch: 0.27 s → 0.19 s).
    Idle OpenMP threads sleep instead of spinning (:func:`cryoglass._allocator.tune_threads`,
    ``OMP_WAIT_POLICY=PASSIVE`` unless set): on a shared machine a spinning thread took the
    cores the work needed (issue 21, ``benchmarks/bench_load.py``).
    SIGTERM (``kill``, a scheduler's time limit) raises ``SystemExit(143)`` instead of ending
    the process on the spot, so every atomic write removes its temporary file as on SIGINT.
    """
    import signal

    from cryoglass._allocator import tune_allocator, tune_threads

    tune_threads()  # before anything imports torch: idle OpenMP threads sleep, not spin
    tune_allocator()
    signal.signal(signal.SIGTERM, _terminated)
    app()
