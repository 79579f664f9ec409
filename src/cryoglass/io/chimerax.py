"""ChimeraX command scripts (``.cxc``) that open cryoglass's maps the way they are meant to be seen.

ChimeraX runs a ``.cxc`` file line by line (``open postprocess.cxc`` from the folder holding
it); paths are relative to that folder.  Only this module writes ChimeraX syntax.
"""

from __future__ import annotations

__all__ = ["fsc3d_script", "localres_script", "postprocess_script"]


def postprocess_script(
    *,
    map_name: str,
    unsharpened_name: str,
    unmasked_name: str | None,
    pixel_size_angstrom: float,
    level: float,
) -> str:
    """Open the sharpened map at a starting threshold, the unsharpened (and unmasked) hidden.

    Parameters
    ----------
    map_name, unsharpened_name : str
        File names (relative to the script's folder).
    unmasked_name : str or None
        The sharpened map without the mask, when one was written.
    pixel_size_angstrom : float
    level : float
        Starting contour level of the sharpened map.

    Returns
    -------
    str
        The script, one command per line.
    """
    lines = [
        "# ChimeraX: open with  chimerax postprocess.cxc  (run from this folder)",
        f"open {map_name}",
        f"volume #1 voxelSize {pixel_size_angstrom:g} level {level:.6g} style surface",
        f"open {unsharpened_name}",
        f"volume #2 voxelSize {pixel_size_angstrom:g} style surface hide",
    ]
    if unmasked_name is not None:
        lines += [f"open {unmasked_name}", "volume #3 hide"]
    lines.append("view")
    return "\n".join(lines) + "\n"


def fsc3d_script(
    map_name: str, full_name: str | None, *, box: int, pixel: float, threshold: float
) -> str:
    """The 3DFSC map in reciprocal-space units, coloured by frequency (and the full map beside it).

    Parameters
    ----------
    map_name : str
        The 3DFSC volume (centred, DC at ``box//2``).
    full_name : str or None
        A full map opened first and tiled beside it.
    box : int
    pixel : float
        Pixel size [Å]; the 3DFSC voxel is ``1/(box · pixel)`` [1/Å].
    threshold : float
        Contour level (the sphericity threshold).

    Returns
    -------
    str
    """
    step = 1.0 / (box * pixel)
    nyquist = 0.5 / pixel
    lines = ["# cryoglass 3dfsc: open in ChimeraX with `open chimerax.cxc`"]
    model = 1
    if full_name is not None:
        lines += [f"open {full_name}", "volume #1 style surface", "view #1"]
        model = 2
    lines += [
        f"open {map_name}",
        f"volume #{model} voxelSize {step:.6g} originIndex {box // 2},{box // 2},{box // 2} "
        f"level {threshold:g} style surface",
        f"color radial #{model} center 0,0,0 palette red:yellow:green:cyan:blue "
        f"range 0,{nyquist:.6g}",
        f"# the surface is where the 3DFSC falls to {threshold:g}; colour = spatial frequency "
        "(red low, blue high), as the 3DFSC webserver's Chimera session",
    ]
    if full_name is not None:
        lines.append(f"tile #1,{model}")
    return "\n".join(lines) + "\n"


def localres_script(
    *,
    map_name: str,
    localres_name: str,
    pixel_size_angstrom: float,
    level: float,
    range_angstrom: tuple[float, float],
) -> str:
    """A map's surface coloured by its local resolution (blue best, white middle, red worst).

    Parameters
    ----------
    map_name : str
        The map to show as a surface (e.g. the local-resolution-filtered map).
    localres_name : str
        The local-resolution map [Å] on the same grid; sampled at the surface vertices.
    pixel_size_angstrom : float
    level : float
        Starting contour level of the map.
    range_angstrom : (low, high)
        Resolutions [Å] at the two ends of the colour scale.

    Returns
    -------
    str
        The script: ``open`` both maps, ``color sample`` the surface by the second, a key.
    """
    low, high = (float(x) for x in range_angstrom)
    mid = 0.5 * (low + high)
    palette = f"{low:.2f},blue:{mid:.2f},white:{high:.2f},red"
    lines = [
        "# ChimeraX: open with  chimerax localres.cxc  (run from this folder)",
        f"open {map_name}",
        f"open {localres_name}",
        f"volume #1 voxelSize {pixel_size_angstrom:g} level {level:.6g} style surface step 1",
        f"volume #2 voxelSize {pixel_size_angstrom:g} hide",
        f"color sample #1 map #2 palette {palette}",
        f"key blue:{low:.1f}Å white:{mid:.1f}Å red:{high:.1f}Å pos 0.72,0.06 size 0.25,0.03",
        "view",
    ]
    return "\n".join(lines) + "\n"
