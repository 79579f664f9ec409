"""The declared table of project job kinds: which command each runs and which options it takes.

A *project job* runs one cryoglass command on files inside the project folder and writes its
outputs to its own RELION-style folder there (``CtfFind/job003/``), exactly as the command
line would from that folder.  Nothing here is specific to one command: a kind is a row of
:data:`PROJECT_KINDS` — the command, the RELION job type (the folder name), how ``--out`` is
given, and the options offered in the API and the form — and :func:`build_argv` turns a
request's values into the command's arguments, checking each one.  Adding a command to the
web app is adding a row.

Values never reach a shell: the arguments are a list handed to the command's own parser in
the worker process (:func:`cryoglass.serve.jobs.run_cli`), and every file argument is a path
that :class:`cryoglass.serve.project.Project` resolved inside the project folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PROJECT_KINDS", "JobKind", "Param", "build_argv", "kinds_description"]

_TYPES = ("path", "float", "int", "str", "bool")


@dataclass(frozen=True)
class Param:
    """One option of a job kind.

    Parameters
    ----------
    name : str
        Key in the request (``"micrographs"``, ``"tile_size"``).
    flag : str or None
        The command's option (``"--tile-size"``); None for the positional argument(s), given
        in table order.  For ``bool`` options, ``flag`` is the switch that turns it on and
        ``off`` the one that turns it off (``"--ctf"``/``"--no-ctf"``).
    type : str
        ``path`` (a file or folder inside the project), ``float``, ``int``, ``str`` or ``bool``.
    required : bool
        The request must give it.  Others left out take the command's own default.
    help : str
        Shown in the form and in ``GET /api/kinds``.
    off : str or None
        For a ``bool`` option, the switch that turns it off (None: omit the flag).
    """

    name: str
    flag: str | None
    type: str = "str"
    required: bool = False
    help: str = ""
    off: str | None = None

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"{self.name}: type must be one of {_TYPES}, got {self.type!r}")


@dataclass(frozen=True)
class JobKind:
    """A project job kind: a cryoglass command, its RELION job type and its options.

    Parameters
    ----------
    name : str
        The kind (``"ctffind"``).
    command : tuple of str
        The command as typed after ``cryoglass`` (``("ctffind",)``, ``("vae", "train")``).
    folder : str
        RELION's job type, the parent of the job folders (``"CtfFind"`` → ``CtfFind/job003``).
    out : str or None
        ``""``: ``--out`` is the job folder itself; a file name: ``--out`` is that file inside
        the job folder (``reconstruct``); None: the command takes no ``--out`` (``fsc``: its
        outputs are options of the table pointing into the job folder, see ``out_options``).
    params : tuple of Param
        The options offered, positional ones first.
    outputs : tuple of str
        The main outputs inside the job folder, offered as inputs of later jobs.
    out_options : tuple of (str, str)
        Options whose value is a file of the job folder (``("--plot", "fsc.png")``).
    """

    name: str
    command: tuple[str, ...]
    folder: str
    params: tuple[Param, ...]
    out: str | None = ""
    outputs: tuple[str, ...] = ()
    out_options: tuple[tuple[str, str], ...] = ()
    summary: str = ""


def _p(name, flag=None, type="str", required=False, help="", off=None) -> Param:  # noqa: A002
    return Param(name, flag, type, required, help, off)


_APIX = _p("apix", "--apix", "float", help="Pixel size [Å] (default: from the file)")
_SEED = _p("seed", "--seed", "int", help="Random seed")
_CTF = _p("ctf", "--ctf", "bool", help="Use the CTF", off="--no-ctf")
_SYM = _p("symmetry", "--symmetry", help="Point group (C1, D7, O, ...)")
_PARTICLES = _p("particles", None, "path", True, "Particles (.star)")
_HALVES = (
    _p("half1", None, "path", True, "Half map 1 (.mrc)"),
    _p("half2", None, "path", True, "Half map 2 (.mrc)"),
)
_MASK = _p("mask", "--mask", "path", help="Soft mask (.mrc, values in [0, 1])")

#: Every project job kind, by name.
PROJECT_KINDS: dict[str, JobKind] = {
    k.name: k
    for k in (
        JobKind(
            "motioncorr",
            ("motioncorr",),
            "MotionCorr",
            (
                _p("movies", None, "path", True, "Movies (.star, rlnMicrographMovieName)"),
                _p("patches", "--patches", help="Patches NXxNY (1x1: global only)"),
                _p("dose_per_frame", "--dose-per-frame", "float", help="Dose per frame [e⁻/Å²]"),
                _p("bin", "--bin", "int", help="Binning factor"),
                _p("gain_reference", "--gain-reference", "path", help="Gain reference (.mrc)"),
                _APIX,
            ),
            outputs=("corrected_micrographs.star",),
            summary="Align movie frames and sum them (dose-weighted).",
        ),
        JobKind(
            "ctffind",
            ("ctffind",),
            "CtfFind",
            (
                _p("micrographs", None, "path", True, "Micrographs (.star)"),
                _p("tile_size", "--tile-size", "int", help="Spectrum tile [px], even"),
                _p("min_res", "--min-res", "float", help="Lowest resolution fitted [Å]"),
                _p("max_res", "--max-res", "float", help="Highest resolution fitted [Å]"),
                _p("defocus_min", "--defocus-min", "float", help="Smallest defocus [Å]"),
                _p("defocus_max", "--defocus-max", "float", help="Largest defocus [Å]"),
                _p("phase_plate", "--phase-plate", "bool", help="Fit a phase shift"),
                _APIX,
            ),
            outputs=("micrographs_ctf.star",),
            summary="Fit the CTF of every micrograph (Thon rings).",
        ),
        JobKind(
            "pick",
            ("pick",),
            "AutoPick",
            (
                _p("micrographs", None, "path", True, "Micrographs (.star)"),
                _p("diameter", "--diameter", "float", True, "Particle diameter [Å]"),
                _p("reference", "--reference", "path", help="2D templates (.mrcs)"),
                _p("map", "--map", "path", help="Templates from this map (.mrc)"),
                _p("threshold", "--threshold", "float", help="Keep picks with FOM ≥ this"),
                _p("min_distance", "--min-distance", "float", help="Smallest distance [Å]"),
                _p("invert", "--invert", "bool", help="Particles are dark", off="--no-invert"),
                _APIX,
            ),
            outputs=("autopick.star",),
            summary="Pick particles (Laplacian-of-Gaussian or templates).",
        ),
        JobKind(
            "extract",
            ("extract",),
            "Extract",
            (
                _p("micrographs", None, "path", True, "Micrographs (.star, with CTF)"),
                _p("coords", "--coords", "path", True, "Coordinates (pick job folder or .star)"),
                _p("box", "--box", "int", True, "Box [micrograph pixels], even"),
                _p("bin", "--bin", "int", help="Binning factor"),
                _p("invert_contrast", "--invert-contrast", "bool", help="Negate the images"),
                _APIX,
            ),
            outputs=("particles.star",),
            summary="Cut particle boxes out of the micrographs.",
        ),
        JobKind(
            "class2d",
            ("class2d",),
            "Class2D",
            (
                _PARTICLES,
                _p("classes", "--classes", "int", True, "Number of classes K"),
                _p("iterations", "--iterations", "int", help="Iterations"),
                _p(
                    "particle_diameter",
                    "--particle-diameter-angstrom",
                    "float",
                    help="Mask diameter [Å]",
                ),
                _CTF,
                _SEED,
            ),
            outputs=("classes.mrcs", "particles.star"),
            summary="2D classification (RELION's EM algorithm).",
        ),
        JobKind(
            "abinitio",
            ("abinitio",),
            "InitialModel",
            (
                _PARTICLES,
                _p("classes", "--classes", "int", help="Number of classes K"),
                _p("iterations", "--iterations", "int", help="Iterations"),
                _p("particle_diameter", "--particle-diameter", "float", help="Mask diameter [Å]"),
                _SYM,
                _CTF,
                _SEED,
            ),
            outputs=("initial_model.mrc",),
            summary="Initial 3D model from 2D particles (SGD).",
        ),
        JobKind(
            "refine3d",
            ("refine3d",),
            "Refine3D",
            (
                _PARTICLES,
                _p("reference", "--ref", "path", True, "Reference map (.mrc)"),
                _p("ini_high", "--ini-high", "float", help="Low-pass the reference to [Å]"),
                _p("particle_diameter", "--particle-diameter", "float", help="Mask diameter [Å]"),
                _SYM,
                _p("max_iterations", "--max-iterations", "int", help="Iterations at most"),
                _CTF,
                _SEED,
            ),
            outputs=(
                "run_data.star",
                "run_class001.mrc",
                "run_half1_class001_unfil.mrc",
                "run_half2_class001_unfil.mrc",
            ),
            summary="3D auto-refine (gold standard, two half sets).",
        ),
        JobKind(
            "class3d",
            ("class3d",),
            "Class3D",
            (
                _PARTICLES,
                _p("reference", "--ref", "path", True, "Reference map (.mrc)"),
                _p("classes", "--classes", "int", True, "Number of classes K"),
                _p("iterations", "--iterations", "int", help="Iterations"),
                _p("particle_diameter", "--particle-diameter", "float", help="Mask diameter [Å]"),
                _SYM,
                _CTF,
                _SEED,
            ),
            summary="3D classification.",
        ),
        JobKind(
            "reconstruct",
            ("reconstruct",),
            "Reconstruct",
            (
                _PARTICLES,
                _p("halves", "--halves", "bool", help="Also the two half maps and their FSC"),
                _SYM,
                _CTF,
                _APIX,
            ),
            out="reconstruction.mrc",
            outputs=("reconstruction.mrc",),
            summary="Reconstruct a map from particles with poses.",
        ),
        JobKind(
            "fsc",
            ("fsc",),
            "FSC",
            (*_HALVES, _MASK, _APIX, _SEED),
            out=None,
            out_options=(("--plot", "fsc.png"), ("--star", "fsc.star")),
            summary="Fourier shell correlation of two half maps.",
        ),
        JobKind(
            "postprocess",
            ("postprocess",),
            "PostProcess",
            (
                *_HALVES,
                _MASK,
                _p("auto_mask", "--auto-mask", "bool", help="Make the mask"),
                _p("bfactor", "--bfactor", help="'auto' or B [Å²]"),
                _APIX,
                _SEED,
            ),
            outputs=("postprocess.mrc", "postprocess_masked.mrc"),
            summary="Mask, FSC, sharpen (RELION's post-processing).",
        ),
        JobKind(
            "3dfsc",
            ("3dfsc",),
            "ThreeDFSC",
            (
                *_HALVES,
                _p("full", "--full", "path", help="Full map (.mrc)"),
                _MASK,
                _p("cone_deg", "--cone-deg", "float", help="Cone half-angle [degrees]"),
                _APIX,
            ),
            summary="Directional resolution (3DFSC).",
        ),
        JobKind(
            "localres",
            ("localres",),
            "LocalRes",
            (
                *_HALVES,
                _MASK,
                _p("sampling", "--sampling", "float", help="Sampling of the local FSC [Å]"),
                _APIX,
                _SEED,
            ),
            outputs=("localres.mrc",),
            summary="Local resolution (windowed FSC).",
        ),
        JobKind(
            "vae",
            ("vae", "train"),
            "VAE",
            (
                _PARTICLES,
                _p("zdim", "--zdim", "int", help="Latent dimension"),
                _p("epochs", "--epochs", "int", help="Epochs"),
                _p("batch_size", "--batch-size", "int", help="Batch size"),
                _p("poses", "--poses", "path", help="cryoDRGN poses.pkl"),
                _CTF,
                _SEED,
            ),
            outputs=("latents.npy",),
            summary="Train a heterogeneity VAE (cryoDRGN's model).",
        ),
        JobKind(
            "vae_analyze",
            ("vae", "analyze"),
            "VaeAnalyze",
            (
                _p("training", None, "path", True, "A vae job's folder (job:<id>)"),
                _p("epoch", "--epoch", "int", help="Epoch (default: the last)"),
                _p("kmeans", "--kmeans", "int", help="k-means clusters (maps at the centres)"),
                _p("pcs", "--pcs", "int", help="Principal components"),
                _SEED,
            ),
            outputs=("labels.npy", "kmeans_000.mrc"),
            summary="Latent space of a trained VAE: PCA, UMAP, k-means maps.",
        ),
    )
}


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _convert(param: Param, value: Any) -> Any:
    """``value`` as the param's type; ValueError naming the param otherwise."""
    kind = param.type
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in ("true", "1", "yes", "on"):
                return True
            if str(value).strip().lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value).strip()) if not isinstance(value, float) else int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError
            return number
        if not isinstance(value, str) or not value.strip() or len(value) > 4096:
            raise ValueError
        if kind == "str" and ("\x00" in value or (value.startswith("-") and not _number(value))):
            raise ValueError  # never an option in disguise; a negative number is a value
        return value.strip()
    except (TypeError, ValueError):
        raise ValueError(f"{param.name}: expected {kind}, got {value!r}") from None


def build_argv(
    kind: JobKind,
    values: dict[str, Any],
    resolve: Callable[[str, str], str],
    job_folder: str,
) -> list[str]:
    """The command's arguments (after ``cryoglass``) for one job.

    Parameters
    ----------
    kind : JobKind
    values : dict of str → value
        The request's options by :attr:`Param.name`; None or ``""`` count as absent.
    resolve : callable (name, value) → str
        Checks a ``path`` value and returns it as the command should see it (relative to the
        project folder); raises ValueError (or PermissionError) with the reason.
    job_folder : str
        The job's folder relative to the project (``"CtfFind/job003"``).

    Returns
    -------
    list of str
        ``[*command, positional..., --option value..., --out job_folder, --json]``.

    Raises
    ------
    ValueError
        An unknown option, a missing required one or a value of the wrong type, naming it.

    Examples
    --------
    >>> argv = build_argv(PROJECT_KINDS["ctffind"], {"micrographs": "m.star", "tile_size": 256},
    ...                   lambda name, value: value, "CtfFind/job002")
    >>> argv
    ['ctffind', 'm.star', '--tile-size', '256', '--out', 'CtfFind/job002', '--json']
    """
    known = {p.name: p for p in kind.params}
    given = {k: v for k, v in values.items() if v is not None and v != ""}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(
            f"{kind.name}: unknown option {unknown[0]!r}; expected one of {', '.join(known)}"
        )
    positional, options = [], []
    for param in kind.params:
        if param.name not in given:
            if param.required:
                raise ValueError(f"{param.name}: required by {kind.name} jobs ({param.help})")
            continue
        value = _convert(param, given[param.name])
        if param.type == "path":
            value = resolve(param.name, value)
        if param.flag is None:
            positional.append(str(value))
        elif param.type == "bool":
            switch = param.flag if value else param.off
            options += [switch] if switch else []
        else:
            text = repr(value) if isinstance(value, float) else str(value)
            # --flag=-50: a negative value can never be read as an option
            options += [f"{param.flag}={text}"] if text.startswith("-") else [param.flag, text]
    argv = [*kind.command, *positional, *options]
    if kind.out is not None:
        argv += ["--out", f"{job_folder}/{kind.out}" if kind.out else job_folder]
    for flag, name in kind.out_options:
        argv += [flag, f"{job_folder}/{name}"]
    return [*argv, "--json"]


def kinds_description() -> list[dict[str, Any]]:
    """The table as JSON (``GET /api/kinds``; the form is built from it)."""
    return [
        {
            "kind": k.name,
            "command": "cryoglass " + " ".join(k.command),
            "folder": k.folder,
            "summary": k.summary,
            "outputs": list(k.outputs),
            "params": [
                {"name": p.name, "type": p.type, "required": p.required, "help": p.help}
                for p in k.params
            ],
        }
        for k in PROJECT_KINDS.values()
    ]
