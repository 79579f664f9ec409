"""`cryoglass reconstruct`: a 3D map from posed particle images by direct Fourier inversion."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from cryoglass.cli._common import fail, print_json


def available_memory_bytes() -> int | None:
    """``MemAvailable`` from /proc/meminfo (Linux), else free pages × page size, else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _read(star: Path, pixel_size: float | None):
    """Particles with poses, one pixel size; exits with a message otherwise."""
    from cryoglass.io import read_particles

    try:
        particles = read_particles(star, pixel_size_angstrom=pixel_size)
    except (ValueError, KeyError, OSError) as error:
        fail(f"{star}: {error}")
    if len(particles) == 0:
        fail(f"{star}: no particles")
    if particles.euler_deg is None:
        fail(f"{star}: reconstruction needs poses: rlnAngleRot/Tilt/Psi (none in this file)")
    pixel = particles.pixel_size_angstrom
    if float(pixel.max() - pixel.min()) > 0.01 * float(pixel.min()):
        fail(
            f"{star}: pixel size mismatch between optics groups ({float(pixel.min()):.4f}–"
            f"{float(pixel.max()):.4f} Å); one map needs one pixel size (rescale the particles)"
        )
    missing = [p for p in particles.image_files if not Path(p).exists()]
    if missing:
        fail(
            f"{star}: {len(missing)} image file(s) missing, e.g. {missing[0]} "
            "(paths in rlnImageName resolve against the STAR file's folder)"
        )
    return particles, float(pixel[0])


def _random_subset(particles):
    """rlnRandomSubset as a tensor, or None."""
    import torch

    table = particles.particles_table
    if table is None or "rlnRandomSubset" not in table.columns:
        return None
    return torch.as_tensor(table["rlnRandomSubset"].to_numpy().astype("int64"))


def _ctf_columns(ctf, count: int):
    """CTFParams with every field a float32 (count,) tensor (broadcast once, up front)."""
    from dataclasses import fields, replace

    import torch

    values = {
        f.name: torch.as_tensor(getattr(ctf, f.name), dtype=torch.float32).expand(count)
        for f in fields(ctf)
    }
    return replace(ctf, **values)


def _ctf_rows(ctf, rows):
    """The CTFs of particles ``rows`` (fields already (count,) tensors)."""
    from dataclasses import fields, replace

    return replace(ctf, **{f.name: getattr(ctf, f.name)[rows] for f in fields(ctf)})


def _local_fsc(a, b):
    """FSC on RELION shells (used only when cryoglass.validate is unavailable)."""
    import torch

    n = a.shape[-1]
    fa, fb = torch.fft.rfftn(a.double()), torch.fft.rfftn(b.double())
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
    kx = torch.arange(n // 2 + 1, dtype=torch.float64)
    r = torch.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)
    shell = torch.round(r).long().reshape(-1)
    keep = shell <= n // 2
    c = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64)
    c[0] = 1.0
    if n % 2 == 0:
        c[-1] = 1.0
    w = c.expand(n, n, -1).reshape(-1)[keep]

    def sums(values):
        return torch.bincount(
            shell[keep], weights=values.reshape(-1)[keep] * w, minlength=n // 2 + 1
        )

    num = sums((fa * fb.conj()).real)
    den = torch.sqrt(sums(fa.abs() ** 2) * sums(fb.abs() ** 2)).clamp_min(1e-300)
    return num / den


def _fsc_outputs(half1, half2, *, pixel: float, out: Path) -> dict:
    """FSC curve, resolutions, the JSON and PNG files; returns the summary."""
    import json

    from cryoglass.report.figures import pyplot

    plt = pyplot()

    from cryoglass.io import write_text_atomic
    from cryoglass.report.figures import save_figure

    n = half1.shape[-1]
    try:
        from cryoglass.validate import fourier_shell_correlation, resolution_at_threshold

        fsc = fourier_shell_correlation(half1.double(), half2.double())
        res = {
            t: float(
                resolution_at_threshold(fsc, threshold=t, box_size=n, pixel_size_angstrom=pixel)
            )
            for t in (0.143, 0.5)
        }
        source = "cryoglass.validate"
    except ImportError:
        fsc = _local_fsc(half1, half2)
        res = {t: _crossing(fsc, t, n, pixel) for t in (0.143, 0.5)}
        source = "local"
    shells = [
        {
            "frequency_inv_angstrom": i / (n * pixel),
            "resolution_angstrom": (n * pixel / i) if i else None,
            "fsc": float(fsc[i]),
        }
        for i in range(fsc.shape[0])
    ]
    summary = {
        "resolution_0143_angstrom": res[0.143],
        "resolution_05_angstrom": res[0.5],
        "fsc_source": source,
        "shells": shells,
        "_fsc": fsc,
    }
    stem = out.with_suffix("")
    public = {k: v for k, v in summary.items() if not k.startswith("_")}
    write_text_atomic(Path(f"{stem}_fsc.json"), json.dumps(public, indent=2) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    freq = [s["frequency_inv_angstrom"] for s in shells]
    ax.plot(freq, fsc.tolist(), "k")
    ax.axhline(0.143, color="r", lw=0.8, ls="--", label="0.143")
    ax.axhline(0.5, color="b", lw=0.8, ls=":", label="0.5")
    ax.set(
        xlabel="spatial frequency [1/Å]",
        ylabel="half-map FSC",
        ylim=(-0.1, 1.05),
        title=f"FSC 0.143: {res[0.143]:.2f} Å",
    )
    ax.legend()
    save_figure(fig, Path(f"{stem}_fsc.png"))
    return summary


def _crossing(fsc, threshold: float, n: int, pixel: float) -> float:
    """First crossing below ``threshold``, interpolated linearly between shells [Å]."""
    values = fsc.tolist()
    for i in range(1, len(values)):
        if values[i] < threshold:
            a, b = values[i - 1], values[i]
            shell = i - 1 + (a - threshold) / (a - b) if a != b else i
            return n * pixel / max(shell, 1e-9)
    return 2 * pixel


def main(
    star: Path = typer.Argument(
        ..., metavar="IN", help="Particles (.star RELION 3.0/3.1/5 or .cs)."
    ),
    out: Path = typer.Option(..., "--out", help="Output map (.mrc)."),
    ctf: bool = typer.Option(
        True, "--ctf/--no-ctf", help="CTF-weighted insertion (needs CTF columns)."
    ),
    halves: bool = typer.Option(
        False, "--halves", help="Also write OUT_half1/2.mrc, OUT_fsc.json, OUT_fsc.png."
    ),
    symmetry: str = typer.Option("C1", "--symmetry", help="Point group: C<n>, D<n>, T, O, I."),
    pad: int = typer.Option(
        2, "--pad", min=1, help="Padding factor of the 3D transform (RELION: 2)."
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Images per batch."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (cuda:0, ...)."),
    wiener_constant: float = typer.Option(
        1e-3, "--wiener-constant", min=0.0, help="Regularisation λ relative to the mean weight."
    ),
    gridding_iterations: int = typer.Option(
        0, "--gridding-iterations", min=0, help="RELION-style iterative gridding (relion: 10)."
    ),
    mask: bool = typer.Option(
        True, "--mask/--no-mask", help="relion_reconstruct's soft sphere (radius N/2, 3 px edge)."
    ),
    pixel_size: float | None = typer.Option(
        None, "--pixel-size", help="Pixel size [Å]; overrides the metadata."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the half split without rlnRandomSubset."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Back-project on a local Dask cluster of N processes."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Back-project on an existing Dask cluster (tcp://host:8786)."
    ),
    chunk_size: int = typer.Option(
        2048, "--chunk-size", min=1, help="Particles per Dask task (with --workers/--scheduler)."
    ),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Checkpoint folder: a rerun resumes the finished chunks."
    ),
) -> None:
    """Reconstruct a map from posed particles by direct Fourier inversion, like relion_reconstruct.

    Each image's 2D transform (origin shift undone, multiplied by its CTF with --ctf) is
    inserted into a padded 3D transform with trilinear weights, together with the CTF² weights;
    the map is Σ CTF·F / (Σ CTF² + λ·mean weight), inverse-transformed, gridding-corrected
    (÷ sinc²) and, by default, masked with relion_reconstruct's soft sphere. With --halves the
    particles are split by rlnRandomSubset (else a seeded random split), both halves are
    reconstructed, their FSC is written, and the full map (both halves' data) is regularised
    with τ² from that FSC, as RELION's final reconstruction (SSNR = FSC/(1−FSC)).
    Before starting, the command prints the memory it will need and refuses when that exceeds
    the available memory.

    \b
    Example:
      cryoglass reconstruct run_data.star --out map.mrc --halves --symmetry C4
    writes map.mrc, map_half1.mrc, map_half2.mrc, map_fsc.json and map_fsc.png; the RELION
    equivalent is
      relion_reconstruct --i run_data.star --o map.mrc --ctf --sym C4
    With --workers N (a local Dask cluster) or --scheduler ADDRESS (an existing one, see
    docs/scaling.md) chunks of --chunk-size particles are back-projected by the workers, which
    read the images from the files themselves; the partial sums add up to the same map.
    --work-dir keeps a checkpoint of the sums: rerun the same command to resume.
      cryoglass reconstruct run_data.star --out map.mrc --workers 2 --work-dir rec_work
    """
    import torch
    from rich.progress import Progress

    from cryoglass.geometry.euler import euler_to_matrix
    from cryoglass.io import ParticleStack, write_mrc
    from cryoglass.reconstruct import (
        accumulate,
        empty_accumulator,
        finalize,
        memory_estimate_bytes,
        merge,
        split_halves,
        tau2_from_fsc,
    )

    stem = out.with_suffix("")
    outputs = [out]
    if halves:
        outputs += [Path(f"{stem}_half{i}.mrc") for i in (1, 2)]
        outputs += [Path(f"{stem}_fsc.json"), Path(f"{stem}_fsc.png")]
    if not star.is_file():
        fail(f"{star}: particle file not found")
    if workers is not None and scheduler is not None:
        fail("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    distributed = workers is not None or scheduler is not None
    if work_dir is not None and not distributed:
        fail("--work-dir checkpoints distributed runs: add --workers N or --scheduler ADDRESS")
    if distributed and device != "cpu":
        fail("--workers/--scheduler back-project on the workers' CPUs; drop --device")
    for path in outputs:
        if path.resolve() == star.resolve():
            fail(f"{path}: output would overwrite the input file")
        if path.exists() and not overwrite:
            fail(f"{path}: exists; pass --overwrite to replace it")
    try:
        from cryoglass.geometry import group_order

        group_order(symmetry)
    except ValueError as error:
        fail(f"--symmetry {symmetry}: {error}")
    try:
        target = torch.device(device)
        torch.empty(0, device=target)
    except (RuntimeError, AssertionError) as error:
        fail(f"--device {device}: not available ({error})")

    particles, pixel = _read(star, pixel_size)
    if ctf and particles.ctf is None:
        fail(f"{star}: --ctf needs CTF columns (rlnDefocusU, rlnDefocusV); use --no-ctf")
    n = particles.image_size
    need = memory_estimate_bytes(
        n,
        pad=pad,
        accumulators=2 if halves else 1,
        batch_size=batch_size,
        gridding_iterations=gridding_iterations,
    )
    have = available_memory_bytes() if target.type == "cpu" else None
    if target.type == "cuda":
        have = torch.cuda.mem_get_info(target)[0]
    typer.echo(
        f"reconstructing {len(particles)} particles, box {n}, {pixel:g} Å, pad {pad}, "
        f"{symmetry}: needs about {need / 2**30:.2f} GiB"
        + (f" (available {have / 2**30:.2f} GiB)" if have else ""),
        err=True,
    )
    if have is not None and need > have:
        fail(
            f"not enough memory: about {need / 2**30:.2f} GiB needed, {have / 2**30:.2f} GiB "
            "available; try --pad 1, a smaller --batch-size, or without --halves"
        )

    count = len(particles)
    rotations = euler_to_matrix(particles.euler_deg.to(torch.float32))
    shifts = particles.shift_angstrom
    shifts = None if shifts is None else shifts.to(torch.float32)
    ctf_params = _ctf_columns(particles.ctf, count) if ctf else None
    if halves:
        try:
            label = split_halves(
                count,
                random_subset=_random_subset(particles),
                generator=torch.Generator().manual_seed(seed),
            )
        except ValueError as error:
            fail(f"{star}: {error}")
    else:
        label = torch.ones(count, dtype=torch.int64)
    groups = tuple(sorted(set(label.tolist())))
    accs = {} if distributed else {h: empty_accumulator(n, pad=pad, device=target) for h in groups}
    memory = None
    if distributed:
        from cryoglass.distributed import ReconstructSettings
        from cryoglass.distributed.commands import distributed_reconstruct

        settings = ReconstructSettings(
            box=n,
            pixel_size_angstrom=pixel,
            groups=groups,
            ctf=ctf,
            pad=pad,
            symmetry=symmetry,
            batch_size=batch_size,
        )
        try:
            accs, memory, _ = distributed_reconstruct(
                particles,
                labels=label,
                settings=settings,
                workers=workers,
                scheduler=scheduler,
                chunk_size=chunk_size,
                work_dir=work_dir,
                echo=lambda text: typer.echo(text, err=True),
            )
        except (ValueError, OSError) as error:
            fail(f"{star}: {error}")
    started = time.perf_counter()
    with ParticleStack(particles) as stack, Progress(transient=True) as progress:
        task = progress.add_task("back-projecting", total=count)
        try:
            for indices, images in [] if distributed else stack.iter_batches(batch_size):
                for h, acc in accs.items():
                    sel = indices[label[indices] == h]
                    if sel.numel() == 0:
                        continue
                    rows = sel - indices[0]
                    accs[h] = accumulate(
                        acc,
                        images[rows],
                        rotations[sel],
                        shift_angstrom=None if shifts is None else shifts[sel],
                        ctf=None if ctf_params is None else _ctf_rows(ctf_params, sel),
                        pixel_size_angstrom=pixel,
                        symmetry=symmetry,
                        inplace=True,
                    )
                progress.update(task, advance=indices.numel())
        except (ValueError, OSError) as error:
            fail(f"{star}: {error}")

    mask_mode = "relion" if mask else None
    options = dict(
        wiener_constant=wiener_constant, gridding_iterations=gridding_iterations, mask=mask_mode
    )
    summary: dict = {
        "particles": count,
        "box": n,
        "pixel_size_angstrom": pixel,
        "symmetry": symmetry,
        "pad": pad,
        "outputs": [str(p) for p in outputs],
    }
    if memory is not None:
        summary.update(memory)
    else:
        from cryoglass.distributed.cluster import peak_rss_bytes

        summary["peak_rss_mib"] = round(peak_rss_bytes() / 2**20, 1)
        summary["backprojection_seconds"] = round(time.perf_counter() - started, 2)
    if halves:
        maps = {h: finalize(accs[h], **options).cpu() for h in (1, 2)}
        for h in (1, 2):
            write_mrc(
                Path(f"{stem}_half{h}.mrc"), maps[h], pixel_size_angstrom=pixel, overwrite=overwrite
            )
        fsc = _fsc_outputs(maps[1], maps[2], pixel=pixel, out=out)
        summary.update(
            {
                k: fsc[k]
                for k in ("resolution_0143_angstrom", "resolution_05_angstrom", "fsc_source")
            }
        )
        summary["half_sizes"] = [int((label == 1).sum()), int((label == 2).sum())]
        # the full map is regularised with the halves' FSC, as RELION's final reconstruction:
        # τ² = SSNR/⟨W⟩ with SSNR from sqrt(2 FSC/(1 + FSC)) (twice the data)
        both = merge(accs[1], accs[2])
        tau2 = tau2_from_fsc(both, fsc["_fsc"].to(both.weight.device), whole_map=True)
        full_options = dict(options, regularisation=tau2)
        volume = finalize(both, **full_options).cpu()
        summary["full_map_regularisation"] = "tau2 from half-map FSC (RELION)"
    else:
        volume = finalize(accs[1], **options).cpu()
    write_mrc(out, volume, pixel_size_angstrom=pixel, overwrite=overwrite)
    typer.echo(f"wrote {', '.join(str(p) for p in outputs)}", err=True)
    if json_output:
        print_json(summary)
