"""Per-micrograph tasks of ``ctffind`` and ``pick`` (run here or on Dask workers).

Each task reads one micrograph from shared storage, calls the science
(:func:`cryoglass.preprocess.estimate_ctf`, the pickers of :mod:`cryoglass.preprocess.pick`),
writes that micrograph's own outputs (the CTF diagnostics) and returns a small summary; the
command gathers the summaries (:func:`cryoglass.distributed.micrographs.map_micrographs`, in
the micrographs' order) into its STAR files.  The settings are frozen dataclasses sent once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from cryoglass._allocator import single_thread

__all__ = ["CtffindSettings", "PickSettings", "ctffind_task", "pick_task", "single_thread"]


@dataclass(frozen=True)
class CtffindSettings:
    """What every ``ctffind`` task needs.

    Attributes
    ----------
    files : tuple of str
        The micrographs (absolute paths).
    stems : tuple of str
        Their stems: outputs are ``out/<stem>.ctf`` and ``out/<stem>_ctf.png``.
    pixel_sizes_angstrom : tuple of float
    optics : tuple of (voltage_kv, cs_mm, amplitude_contrast)
    search : cryoglass.preprocess.CTFSearch
    out : str
        The output folder.
    """

    files: tuple[str, ...]
    stems: tuple[str, ...]
    pixel_sizes_angstrom: tuple[float, ...]
    optics: tuple[tuple[float, float, float], ...]
    search: object
    out: str


def ctffind_task(index: int, settings: CtffindSettings) -> dict:
    """Estimate micrograph ``index``'s CTF; write its diagnostic MRC and PNG; return the fit.

    Returns
    -------
    dict
        :meth:`cryoglass.preprocess.CTFFit.to_dict` plus ``seconds`` (the estimate alone) and
        ``ctf_image`` (the diagnostic MRC's file name inside ``out``).
    """
    from cryoglass.io import read_mrc, write_mrc
    from cryoglass.preprocess import diagnostic_image, estimate_ctf
    from cryoglass.report.ctffind import save_ctffind_figure

    micrograph, _ = read_mrc(settings.files[index])
    if micrograph.ndim == 3 and micrograph.shape[0] == 1:
        micrograph = micrograph[0]
    voltage, cs, q0 = settings.optics[index]
    started = time.perf_counter()
    with single_thread():
        fit = estimate_ctf(
            micrograph,
            pixel_size_angstrom=settings.pixel_sizes_angstrom[index],
            voltage_kv=voltage,
            cs_mm=cs,
            amplitude_contrast=q0,
            search=settings.search,
        )
    seconds = time.perf_counter() - started
    out = Path(settings.out)
    stem = settings.stems[index]
    write_mrc(
        out / f"{stem}.ctf",
        diagnostic_image(fit),
        pixel_size_angstrom=fit.spectrum_pixel_size_angstrom,
        overwrite=True,
    )
    save_ctffind_figure(out / f"{stem}_ctf.png", fit, title=Path(settings.files[index]).name)
    result = fit.to_dict()
    result.update(seconds=round(seconds, 3), ctf_image=f"{stem}.ctf", timings=fit.search_seconds)
    return result


@dataclass(frozen=True)
class PickSettings:
    """What every ``pick`` task needs.

    Attributes
    ----------
    files : tuple of str
        The micrographs (absolute paths).
    pixel_sizes_angstrom : tuple of float
    ctf : tuple of CTFParams or None
        Each micrograph's CTF (scalar fields), for CTF-aware templates.
    diameter_angstrom : float
        Particle diameter [Å].
    min_distance_angstrom : float
        Smallest distance between picks [Å].
    templates : Tensor (T, b, b) or None
        None: LoG picking; else the templates (protein bright).
    template_pixel_size_angstrom : float
    psi_deg : tuple of float or None
        In-plane angles added to the templates (None: templates used as given).
    invert : bool
        Particles are dark in the micrographs.
    overlays : int
        Tasks of micrographs ``0 … overlays−1`` also return their binned image.
    pixels_per_diameter : float
        Binning: the particle spans this many working pixels.
    """

    files: tuple[str, ...]
    pixel_sizes_angstrom: tuple[float, ...]
    ctf: tuple
    diameter_angstrom: float
    min_distance_angstrom: float
    templates: torch.Tensor | None = None
    template_pixel_size_angstrom: float = 1.0
    psi_deg: tuple[float, ...] | None = None
    invert: bool = True
    overlays: int = 0
    pixels_per_diameter: float = 24.0


def pick_task(index: int, settings: PickSettings) -> dict:
    """Every candidate peak of micrograph ``index`` (thresholding happens on the client).

    Returns
    -------
    dict
        ``coordinates_px`` (n, 2) [original pixels], ``figure_of_merit`` (n,), ``psi_deg`` and
        ``template_index`` (n,) for templates, ``seconds``, ``shape`` (h, w), and for the first
        ``overlays`` micrographs ``image`` (the binned micrograph, float16) and its ``binning``.
    """
    from cryoglass.io import read_mrc

    micrograph, _ = read_mrc(settings.files[index])
    if micrograph.ndim == 3 and micrograph.shape[0] == 1:
        micrograph = micrograph[0]
    with single_thread():
        return _pick(index, micrograph, settings)


def _pick(index: int, micrograph: torch.Tensor, settings: PickSettings) -> dict:
    from cryoglass.preprocess import pick

    started = time.perf_counter()
    pixel = settings.pixel_sizes_angstrom[index]
    working = pick.working_pixel_size(
        pixel, settings.diameter_angstrom, pixels_per_diameter=settings.pixels_per_diameter
    )
    image, binning = pick.bin_micrograph(
        micrograph, pixel_size_angstrom=pixel, working_pixel_size_angstrom=working
    )
    working = pixel * 0.5 * sum(binning.scale)
    diameter_px = settings.diameter_angstrom / working
    psi = template = None
    if settings.templates is None:
        diameters = torch.linspace(0.75, 1.25, 5) * diameter_px
        fom, _ = pick.log_figure_of_merit(image, diameters_px=diameters, invert=settings.invert)
    else:
        templates, mask, index_of, angles = pick.prepare_templates(
            settings.templates,
            pixel_size_angstrom=settings.template_pixel_size_angstrom,
            working_pixel_size_angstrom=working,
            psi_deg=None if settings.psi_deg is None else torch.tensor(settings.psi_deg),
            ctf=settings.ctf[index],
            mask_diameter_angstrom=settings.diameter_angstrom,
        )
        fom, best = pick.template_figure_of_merit(image, templates, mask, invert=settings.invert)
    # centres closer to an edge than 0.4 diameters are dropped (RELION picks particles that
    # touch the edge; most of such a particle is still inside)
    coords, values = pick.find_peaks(
        fom, min_distance_px=settings.min_distance_angstrom / working, border_px=0.4 * diameter_px
    )
    if settings.templates is not None:
        chosen = best[coords[:, 1].long(), coords[:, 0].long()]
        template = index_of[chosen]
        psi = angles[chosen]
    result = {
        "coordinates_px": binning.to_original(coords),
        "figure_of_merit": values.to(torch.float64),
        "psi_deg": psi,
        "template_index": template,
        "seconds": round(time.perf_counter() - started, 3),
        "shape": tuple(micrograph.shape[-2:]),
    }
    if index < settings.overlays:
        result.update(image=image.to(torch.float16), binning=binning)
    return result
