r"""Superpose one map on another over rotations, translations and hand.

A map made from projections alone (``cryoglass abinitio``, RELION's SGD, cryoSPARC ab initio)
sits in an arbitrary orientation and position, and its hand is undetermined: a map and its
mirror image have the same projections, mirrored (Rosenthal & Henderson 2003).  To compare it
with a known structure (a simulation's truth, another run) it must first be superposed:

.. math:: (\hat R, \hat{\mathbf t}, \hat h) = \arg\max_{R, \mathbf t, h}
          \frac{\sum_{\mathbf x} u(\mathbf x)\, v_{R,h}(\mathbf x - \mathbf t)}
               {\lVert u \rVert\, \lVert v_{R,h} \rVert},
          \qquad v_{R,h}(\mathbf x) = v(M_h R^{\mathsf T} \mathbf x),

with ``M_0 = 1`` and ``M_1`` the mirror ``x → −x``.  For each rotation the correlation at
**every** translation is one FFT product (``u ⋆ v = F⁻¹[\hat u\, \overline{\hat v}]``), so the
search is over rotations only:

1. both maps are Fourier-cropped to a small box (``search_box``) and low-passed
   (``resolution_angstrom``), where the correlation is smooth;
2. every rotation of a HEALPix SO(3) grid (:func:`cryoglass.geometry.so3_grid`, ``order``) is
   scored for both hands, and the best ``candidates`` are refined by local lattices of
   rotations whose step halves each round (down to ``final_step_deg``), then once more at
   half and a quarter of that step on a box of up to 64 voxels, twice, with the reference
   moved by the sub-voxel part of the current translation (the scores are at whole voxels);
3. at full size the best rotation's translation is found from the FFT correlation (peak with a
   parabolic sub-voxel fit), and the aligned map is returned.

References
----------
Rosenthal, P. B. & Henderson, R. (2003) Optimal determination of particle orientation, absolute
hand, and contrast loss in single-particle electron cryomicroscopy. J. Mol. Biol. 333:721-745.
https://doi.org/10.1016/j.jmb.2003.07.013
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cryoglass.fourier.filters import lowpass
from cryoglass.fourier.rescale import fourier_crop
from cryoglass.fourier.shift import shift_image
from cryoglass.geometry import euler_to_matrix, rotvec_to_matrix, so3_grid
from cryoglass.simulate.dataset import rotate_map

__all__ = ["MapAlignment", "align_maps", "mirror_map", "transform_map"]


@dataclass(frozen=True, eq=False)
class MapAlignment:
    """The superposition found by :func:`align_maps`.

    Attributes
    ----------
    rotation : Tensor, (3, 3), float64
        ``R``: the aligned map is ``v(M_h Rᵀ x − t)`` (``rotate_map``'s convention).
    shift_px : Tensor, (3,), float64
        ``t`` ordered (x, y, z) [voxels].
    mirrored : bool
        Whether the hand was inverted (``h = 1``: mirror ``x → −x`` first).
    correlation : float
        Normalised cross-correlation of the full-size maps after alignment.
    aligned : Tensor, (N, N, N)
        The moving map superposed on the reference.
    """

    rotation: torch.Tensor
    shift_px: torch.Tensor
    mirrored: bool
    correlation: float
    aligned: torch.Tensor


def mirror_map(volume: torch.Tensor) -> torch.Tensor:
    """The mirror image through the plane ``x = 0`` (origin at ``N//2``): ``v(−x, y, z)``.

    Examples
    --------
    >>> import torch
    >>> v = torch.zeros(4, 4, 4); v[2, 2, 3] = 1.0   # x = +1
    >>> int(mirror_map(v)[2, 2].argmax())            # x = −1
    1
    """
    n = volume.shape[-1]
    index = (2 * (n // 2) - torch.arange(n, device=volume.device)) % n
    out = volume.index_select(-1, index)
    if n % 2 == 0:  # x = −N/2 has no partner inside the box
        out[..., 0] = 0
    return out


def transform_map(
    volume: torch.Tensor,
    rotation: torch.Tensor,
    shift_px: torch.Tensor,
    *,
    mirrored: bool = False,
) -> torch.Tensor:
    """``v(M_h Rᵀ x − t)``: mirror (optionally), rotate (trilinear), then shift (Fourier).

    Parameters
    ----------
    volume : Tensor, (N, N, N)
    rotation : Tensor, (3, 3)
    shift_px : Tensor, (3,)
        (x, y, z) [voxels].
    mirrored : bool

    Returns
    -------
    Tensor, (N, N, N)
    """
    v = mirror_map(volume) if mirrored else volume
    v = rotate_map(v, rotation.to(v.dtype)[None])[0]
    return shift_image(v, shift_px.to(v.dtype), pixel_size_angstrom=1.0)


def _normalised(v: torch.Tensor) -> torch.Tensor:
    v = v - v.mean(dim=(-3, -2, -1), keepdim=True)
    return v / v.square().sum(dim=(-3, -2, -1), keepdim=True).sqrt().clamp_min(1e-30)


def _best_translation(
    reference_f: torch.Tensor, moving: torch.Tensor, max_shift: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best normalised correlation over translations (|t| ≤ max_shift) and its integer shift.

    ``reference_f`` is ``rfftn`` of the normalised reference; ``moving`` (B, n, n, n).
    Returns (B,) scores and (B, 3) shifts (x, y, z) [voxels].
    """
    n = moving.shape[-1]
    m = _normalised(moving)
    cc = torch.fft.irfftn(reference_f * torch.fft.rfftn(m, dim=(-3, -2, -1)).conj(), s=(n,) * 3)
    d = torch.fft.fftfreq(n, 1.0 / n, device=moving.device)
    far = (d[:, None, None] ** 2 + d[None, :, None] ** 2 + d[None, None, :] ** 2) > max_shift**2
    cc = cc.masked_fill(far, -math.inf).reshape(moving.shape[0], -1)
    score, index = cc.max(dim=1)
    z, y, x = index // (n * n), (index // n) % n, index % n
    shifts = torch.stack([d[x], d[y], d[z]], dim=1)
    return score, shifts


def _lattice(step_deg: float, *, device, dtype) -> torch.Tensor:
    """Rotations ``exp([δ]ₓ)`` for δ on the 27-point cube of spacing ``step`` (identity first)."""
    axis = torch.tensor([0.0, -1.0, 1.0], dtype=torch.float64)
    vectors = torch.cartesian_prod(axis, axis, axis) * math.radians(step_deg)
    return rotvec_to_matrix(vectors).to(device=device, dtype=dtype)


def _scores(reference_f, moving, rotations, max_shift, batch):
    scores, shifts = [], []
    for start in range(0, rotations.shape[0], batch):
        rotated = rotate_map(moving, rotations[start : start + batch])
        s, t = _best_translation(reference_f, rotated, max_shift)
        scores.append(s)
        shifts.append(t)
    return torch.cat(scores), torch.cat(shifts)


def _parabolic(cc: torch.Tensor, peak: tuple[int, int, int]) -> torch.Tensor:
    """Sub-voxel peak offset per axis (x, y, z) from the three values around it."""
    n = cc.shape[-1]
    offsets = []
    for axis in (2, 1, 0):  # x, y, z
        idx = list(peak)
        values = []
        for d in (-1, 0, 1):
            idx[axis] = (peak[axis] + d) % n
            values.append(float(cc[tuple(idx)]))
        left, centre, right = values
        denominator = left - 2 * centre + right
        offsets.append(0.0 if denominator >= 0 else 0.5 * (left - right) / denominator)
    return torch.tensor(offsets, dtype=torch.float64).clamp(-0.5, 0.5)


def align_maps(
    reference: torch.Tensor,
    moving: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    resolution_angstrom: float | None = None,
    search_box: int = 24,
    order: int = 1,
    candidates: int = 6,
    final_step_deg: float = 1.0,
    max_shift_fraction: float = 0.25,
    hand: bool = True,
    batch: int = 64,
) -> MapAlignment:
    """Superpose ``moving`` on ``reference`` over rotations, translations and (optionally) hand.

    Parameters
    ----------
    reference, moving : Tensor, (N, N, N)
        Maps on the same box and pixel size, origin at ``N//2``.
    pixel_size_angstrom : float
    resolution_angstrom : float, optional
        Low-pass of the search [Å] (default: the search box's Nyquist × 1.5).
    search_box : int
        Box of the global search [voxels] (Fourier-cropped; at most ``N``).
    order : int
        HEALPix order of the global SO(3) grid (1: 30°, 576 rotations; 2: 15°, 4,608).
    candidates : int
        Best rotations of the global search refined locally (per hand).
    final_step_deg : float
        Angular step of the last local round [degrees].
    max_shift_fraction : float
        Translations searched up to this fraction of the box.
    hand : bool
        Also try the mirror image (projections cannot tell the hand).
    batch : int
        Rotated maps per FFT batch.

    Returns
    -------
    MapAlignment

    Examples
    --------
    >>> import torch
    >>> from cryoglass.geometry import euler_to_matrix
    >>> g = torch.Generator().manual_seed(0)
    >>> u = torch.zeros(16, 16, 16); u[4:12, 6:10, 5:9] = 1; u[5:8, 9:12, 6:8] = 2
    >>> turn = euler_to_matrix(torch.tensor([40.0, 70.0, -20.0], dtype=torch.float64))
    >>> v = transform_map(u, turn, torch.tensor([1.0, -2.0, 0.0]), mirrored=True)
    >>> result = align_maps(u, v, pixel_size_angstrom=1.0, search_box=16)
    >>> result.mirrored, result.correlation > 0.9
    (True, True)
    """
    if reference.shape != moving.shape or reference.ndim != 3 or len(set(reference.shape)) != 1:
        raise ValueError(
            f"align_maps needs two cubic maps of one shape, got {tuple(reference.shape)} and "
            f"{tuple(moving.shape)}"
        )
    n = reference.shape[-1]
    small = min(search_box, n)
    pixel_small = pixel_size_angstrom * n / small
    resolution = resolution_angstrom if resolution_angstrom is not None else 3.0 * pixel_small
    resolution = max(resolution, 2.0 * pixel_small)
    best = []
    for mirrored in (False, True) if hand else (False,):
        score, rotation = _search(
            reference,
            moving,
            mirrored,
            small,
            resolution,
            order=order,
            candidates=candidates,
            final_step_deg=final_step_deg,
            max_shift_fraction=max_shift_fraction,
            batch=batch,
            pixel=pixel_size_angstrom,
        )
        best.append((score, mirrored, rotation))
    _, mirrored, rotation = max(best, key=lambda item: item[0])
    # last local rounds on a finer box (up to 64 voxels) for sub-degree precision; the
    # correlation is scored at whole-voxel shifts only, so the reference is first moved by the
    # sub-voxel part of the current shift (else a rotation that mimics it would score higher)
    fine = min(n, 64)
    for _ in range(2):
        shift = _finish(reference, moving, rotation, mirrored, max_shift_fraction * n).shift_px
        fraction = shift - shift.round()
        moved = shift_image(reference.double(), -fraction, pixel_size_angstrom=1.0)
        _, rotation = _local(
            moved,
            moving,
            mirrored,
            fine,
            2.5 * pixel_size_angstrom * n / fine,
            rotation[None],
            steps=(final_step_deg, final_step_deg / 2, final_step_deg / 4),
            max_shift_fraction=max_shift_fraction,
            batch=batch,
            pixel=pixel_size_angstrom,
        )
    return _finish(reference, moving, rotation, mirrored, max_shift_fraction * n)


def _prepared(v: torch.Tensor, box: int, resolution: float, pixel: float) -> torch.Tensor:
    """Fourier-cropped to ``box`` and low-passed to ``resolution`` [Å]."""
    n = v.shape[-1]
    v = fourier_crop(v.double(), (box,) * 3) if box < n else v.double()
    return lowpass(v, ndim=3, resolution_angstrom=resolution, pixel_size_angstrom=pixel * n / box)


def _local(
    reference, moving, mirrored, box, resolution, start, *, steps, max_shift_fraction, batch, pixel
):
    """Local lattice rounds (one per step) around each start rotation; the best (score, R)."""
    ref_f = torch.fft.rfftn(
        _normalised(_prepared(reference, box, resolution, pixel)), dim=(-3, -2, -1)
    )
    mov = _prepared(mirror_map(moving) if mirrored else moving, box, resolution, pixel)
    current = start
    scores = None
    for step in steps:
        lattice = _lattice(step, device=mov.device, dtype=mov.dtype)
        trial = (current[:, None] @ lattice[None]).reshape(-1, 3, 3)
        s, _ = _scores(ref_f, mov, trial, max_shift_fraction * box, batch)
        s = s.reshape(current.shape[0], -1)
        pick = s.argmax(dim=1)
        current = trial.reshape(current.shape[0], -1, 3, 3)[torch.arange(len(pick)), pick]
        scores = s.max(dim=1).values
    i = int(scores.argmax())
    return float(scores[i]), current[i]


def _search(
    reference,
    moving,
    mirrored,
    box,
    resolution,
    *,
    order,
    candidates,
    final_step_deg,
    max_shift_fraction,
    batch,
    pixel,
):
    """Global grid on the small box, then local rounds with halving steps: (score, R)."""
    ref_f = torch.fft.rfftn(
        _normalised(_prepared(reference, box, resolution, pixel)), dim=(-3, -2, -1)
    )
    mov = _prepared(mirror_map(moving) if mirrored else moving, box, resolution, pixel)
    grid = euler_to_matrix(so3_grid(order, dtype=torch.float64))
    scores, _ = _scores(ref_f, mov, grid, max_shift_fraction * box, batch)
    top = scores.topk(min(candidates, scores.shape[0])).indices
    steps = [60.0 / 2**order / 2]
    while steps[-1] > final_step_deg:
        steps.append(max(steps[-1] / 2, final_step_deg))
    return _local(
        reference,
        moving,
        mirrored,
        box,
        resolution,
        grid[top],
        steps=steps,
        max_shift_fraction=max_shift_fraction,
        batch=batch,
        pixel=pixel,
    )


def _finish(reference, moving, rotation, mirrored, max_shift) -> MapAlignment:
    """Full-size translation (FFT peak + parabola) and the aligned map."""
    dtype = reference.dtype if reference.is_floating_point() else torch.float32
    rotated = rotate_map(
        (mirror_map(moving) if mirrored else moving).double(), rotation.double()[None]
    )[0]
    ref_f = torch.fft.rfftn(_normalised(reference.double()))
    n = reference.shape[-1]
    cc = torch.fft.irfftn(ref_f * torch.fft.rfftn(_normalised(rotated)).conj(), s=(n,) * 3)
    _, shift = _best_translation(ref_f, rotated[None], max_shift)
    peak = tuple(int(v) % n for v in (shift[0, 2], shift[0, 1], shift[0, 0]))  # (z, y, x)
    shift_px = shift[0].double() + _parabolic(cc, peak)
    aligned = shift_image(rotated, shift_px, pixel_size_angstrom=1.0)
    a, b = _normalised(reference.double()), _normalised(aligned)
    return MapAlignment(
        rotation=rotation.double(),
        shift_px=shift_px,
        mirrored=bool(mirrored),
        correlation=float((a * b).sum()),
        aligned=aligned.to(dtype),
    )
