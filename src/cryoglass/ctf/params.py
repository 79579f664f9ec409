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
