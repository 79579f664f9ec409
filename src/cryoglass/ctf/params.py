"""The CTF parameter bundle."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

__all__ = ["CTFParams"]


@dataclass(frozen=True)
class CTFParams:
    """Parameters of the contrast transfer function, in RELION's meaning and units.

    Every field is a float or a tensor; tensors broadcast against each other, so one
    ``CTFParams`` describes a batch of particles (shape ``batch_shape``).

    Attributes
    ----------
    defocus_u_angstrom, defocus_v_angstrom : float or Tensor
        Defocus along the major/minor astigmatism axes [Å]; positive = underfocus
        (rlnDefocusU, rlnDefocusV).
    astigmatism_angle_deg : float or Tensor
        Angle of the U axis from the image x axis, counter-clockwise [degrees]
        (rlnDefocusAngle).
    voltage_kv : float or Tensor
        Acceleration voltage [kV] (rlnVoltage).
    cs_mm : float or Tensor
        Spherical aberration [mm] (rlnSphericalAberration).
    amplitude_contrast : float or Tensor
        Fraction of amplitude contrast Q0, 0 ≤ Q0 < 1 (rlnAmplitudeContrast).
    phase_shift_deg : float or Tensor
        Additional phase shift, e.g. from a phase plate [degrees] (rlnPhaseShift).
    bfactor_a2 : float or Tensor
        Envelope B-factor [Å²]; the envelope is exp(-B k²/4) as in RELION (rlnCtfBfactor).
    scale : float or Tensor
        Overall scale of the CTF (rlnCtfScalefactor).
    """

    defocus_u_angstrom: float | torch.Tensor
    defocus_v_angstrom: float | torch.Tensor
    astigmatism_angle_deg: float | torch.Tensor = 0.0
    voltage_kv: float | torch.Tensor = 300.0
    cs_mm: float | torch.Tensor = 2.7
    amplitude_contrast: float | torch.Tensor = 0.1
    phase_shift_deg: float | torch.Tensor = 0.0
    bfactor_a2: float | torch.Tensor = 0.0
    scale: float | torch.Tensor = 1.0

    def as_tensors(
        self, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> CTFParams:
        """The same parameters as tensors of one dtype on one device (broadcast-compatible)."""
        dtype = dtype or torch.get_default_dtype()
        values = {
            f.name: torch.as_tensor(getattr(self, f.name), device=device, dtype=dtype)
            for f in fields(self)
        }
        return replace(self, **values)

    def expand(
        self,
        n: int | tuple[int, ...] | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> CTFParams:
        """Every field as its own tensor of shape ``(n,)``: one value per particle.

        The one CTF broadcast of cryoglass: scalars (e.g. one optics group's voltage) are
        repeated, per-particle tensors are kept (and copied), so rows can be selected with
        ``ctf[rows]`` and fields concatenated across files.

        Parameters
        ----------
        n : int or tuple of int, optional
            Number of particles, or a batch shape (default: the batch size; the batch must
            then be 1-D).
        dtype : torch dtype, optional
            Default: ``torch.get_default_dtype()``.
        device : torch device, optional

        Returns
        -------
        CTFParams
            Fields: contiguous tensors of shape ``(n,)`` (or ``n`` when a shape is given).

        Raises
        ------
        ValueError
            A field cannot broadcast to ``(n,)``.

        Examples
        --------
        >>> CTFParams(defocus_u_angstrom=torch.tensor([1e4, 2e4]), defocus_v_angstrom=1e4
        ...           ).expand().defocus_v_angstrom
        tensor([10000., 10000.])
        """
        dtype = dtype or torch.get_default_dtype()
        if n is None:
            shape = self.batch_shape
            if len(shape) > 1:
                raise ValueError(f"CTFParams.expand: batch shape {tuple(shape)} is not 1-D")
            n = int(shape[0]) if len(shape) == 1 else 1
        target = (int(n),) if isinstance(n, int) else tuple(int(v) for v in n)
        values = {}
        for f in fields(self):
            value = torch.as_tensor(getattr(self, f.name), dtype=dtype, device=device)
            try:
                values[f.name] = value.expand(target).clone()
            except RuntimeError:
                raise ValueError(
                    f"CTFParams.expand: {f.name} of shape {tuple(value.shape)} does not "
                    f"broadcast to {target}"
                ) from None
        return replace(self, **values)

    def flatten(self) -> CTFParams:
        """Every (tensor) field reshaped to one dimension (after :meth:`expand` to a shape)."""
        return replace(
            self,
            **{f.name: torch.as_tensor(getattr(self, f.name)).reshape(-1) for f in fields(self)},
        )

    @property
    def batch_shape(self) -> torch.Size:
        """Broadcast shape of all fields (``torch.Size([])`` for scalars)."""
        shapes = [torch.as_tensor(getattr(self, f.name)).shape for f in fields(self)]
        return torch.broadcast_shapes(*shapes)

    def __getitem__(self, index) -> CTFParams:
        """Select particles from a batched ``CTFParams`` (fields broadcast first)."""
        shape = self.batch_shape
        values = {}
        for f in fields(self):
            value = torch.as_tensor(getattr(self, f.name))
            values[f.name] = value.expand(shape)[index]
        return replace(self, **values)
