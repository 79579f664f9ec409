"""2D classification by maximum-likelihood expectation–maximisation (RELION's Class2D model)."""

from cryoglass.classify.checkpoint import (
    check_same_run,
    checkpoint_record,
    checkpoint_tensors,
    model_from_checkpoint,
    run_description,
)
from cryoglass.classify.em2d import (
    Assignments,
    Class2DModel,
    Class2DResult,
    Class2DSettings,
    classify_2d,
    default_batch_size,
    em_iteration,
    initial_model,
    tensor_batches,
)
from cryoglass.classify.geometry2d import (
    center_of_mass_px,
    psi_angles_deg,
    rotate_images,
    soft_disc_mask,
    wrap_angle_deg,
)
from cryoglass.classify.metrics import adjusted_rand_index, inplane_error_deg
from cryoglass.classify.synthetic import ViewsDataset, simulate_views

__all__ = [
    "Assignments",
    "Class2DModel",
    "Class2DResult",
    "Class2DSettings",
    "ViewsDataset",
    "adjusted_rand_index",
    "center_of_mass_px",
    "check_same_run",
    "checkpoint_record",
    "checkpoint_tensors",
    "classify_2d",
    "default_batch_size",
    "em_iteration",
    "initial_model",
    "inplane_error_deg",
    "model_from_checkpoint",
    "psi_angles_deg",
    "rotate_images",
    "run_description",
    "simulate_views",
    "soft_disc_mask",
    "tensor_batches",
    "wrap_angle_deg",
]
