"""The explorers' figures: PNGs computed on request from slider values (``/api/explore/...``).

The figures themselves are :mod:`cryoglass.serve.explorers`; this module only reads the query
parameters (with their ranges) and answers ``image/png`` that browsers must not cache.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from cryoglass.serve import explorers

__all__ = ["router"]

router = APIRouter(prefix="/api/explore", tags=["explorers"])


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


def _ctf_from_query(
    defocus_angstrom: float = Query(15000.0, ge=0.0, le=100000.0),
    astigmatism_angstrom: float = Query(0.0, ge=-20000.0, le=20000.0),
    astigmatism_angle_deg: float = Query(0.0, ge=-180.0, le=180.0),
    voltage_kv: float = Query(300.0, ge=10.0, le=1000.0),
    cs_mm: float = Query(2.7, ge=0.0, le=10.0),
    amplitude_contrast: float = Query(0.1, ge=0.0, le=0.99),
    phase_shift_deg: float = Query(0.0, ge=-180.0, le=180.0),
    bfactor_a2: float = Query(0.0, ge=-200.0, le=2000.0),
):
    return explorers.ctf_params(
        defocus_angstrom=defocus_angstrom,
        astigmatism_angstrom=astigmatism_angstrom,
        astigmatism_angle_deg=astigmatism_angle_deg,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
        phase_shift_deg=phase_shift_deg,
        bfactor_a2=bfactor_a2,
    )


@router.get("/ctf/profile.png")
def explore_ctf_profile(
    params=Depends(_ctf_from_query),
    pixel_size_angstrom: float = Query(1.0, ge=0.2, le=10.0),
) -> Response:
    """1D CTF along the defocus-u and -v axes (PNG)."""
    return _png(explorers.ctf_profile_png(params, pixel_size_angstrom=pixel_size_angstrom))


@router.get("/ctf/image.png")
def explore_ctf_image(
    params=Depends(_ctf_from_query),
    pixel_size_angstrom: float = Query(1.0, ge=0.2, le=10.0),
) -> Response:
    """2D CTF, DC in the middle (PNG)."""
    return _png(explorers.ctf_image_png(params, pixel_size_angstrom=pixel_size_angstrom))


@router.get("/blur.png")
def explore_blur(
    lowpass_angstrom: float = Query(0.0, ge=0.0, le=100.0, description="0: none"),
    bfactor_a2: float = Query(0.0, ge=-300.0, le=2000.0),
    axis: str = Query("z", pattern="^[zyx]$"),
    index: int = Query(explorers.MAP_BOX // 2, ge=0, lt=explorers.MAP_BOX),
    view: str = Query("slice", pattern="^(slice|projection)$"),
) -> Response:
    """The bundled map before/after low-pass and B-factor, and the power spectra (PNG)."""
    if 0 < lowpass_angstrom < 2 * explorers.MAP_PIXEL_ANGSTROM:
        raise HTTPException(422, "lowpass_angstrom must be 0 (none) or >= Nyquist (4 Å)")
    return _png(
        explorers.blur_png(
            lowpass_angstrom=lowpass_angstrom,
            bfactor_a2=bfactor_a2,
            axis=axis,
            index=index,
            view=view,
        )
    )


@router.get("/slice.png")
def explore_slice(
    rot_deg: float = Query(0.0, ge=-360.0, le=360.0),
    tilt_deg: float = Query(0.0, ge=-360.0, le=360.0),
    psi_deg: float = Query(0.0, ge=-360.0, le=360.0),
) -> Response:
    """Central slice log|F| and projection of the bundled map at RELION Euler angles."""
    return _png(explorers.fourier_slice_png(rot_deg=rot_deg, tilt_deg=tilt_deg, psi_deg=psi_deg))
