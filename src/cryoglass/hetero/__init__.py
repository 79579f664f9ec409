"""Heterogeneity with variational autoencoders (cryoDRGN-style), with known poses and CTF.

* :mod:`~cryoglass.hetero.models` — encoder, positional encoding, Hermitian Fourier decoder.
* :mod:`~cryoglass.hetero.slices` — Fourier points of images, central-slice coordinates.
* :mod:`~cryoglass.hetero.train` — loss, training loop, checkpoints (resumable, seeded).
* :mod:`~cryoglass.hetero.volumes` — maps from the decoder at latent points.
* :mod:`~cryoglass.hetero.analysis` — PCA, UMAP, k-means, Gaussian mixtures, trajectories.
* :mod:`~cryoglass.hetero.synthetic` — blob datasets with a known moving part (tests, lessons).
"""

from cryoglass.hetero.analysis import (
    PCA,
    GaussianMixture,
    adjusted_rand_index,
    gaussian_mixture,
    graph_traversal,
    kmeans,
    knn_graph,
    nearest_points,
    pc_trajectory,
    pca,
    umap_embedding,
)
from cryoglass.hetero.models import (
    FourierDecoder,
    HeteroVAE,
    ImageEncoder,
    VAEConfig,
    gaussian_encoding,
    gaussian_frequencies,
    hermitian_half,
    kl_divergence,
    positional_encoding,
    reparameterize,
)
from cryoglass.hetero.slices import FourierPoints, fourier_points, slice_coordinates
from cryoglass.hetero.synthetic import (
    BlobModel,
    SyntheticParticles,
    arm_model,
    blob_model,
    blob_particles,
    two_state_amplitudes,
)
from cryoglass.hetero.train import (
    ParticleData,
    TrainConfig,
    build_model,
    checkpoint_payload,
    encode_latents,
    fit,
    model_from_checkpoint,
)
from cryoglass.hetero.volumes import fourier_volume, generate_volumes, spectrum_to_volume

__all__ = [
    "PCA",
    "BlobModel",
    "FourierDecoder",
    "FourierPoints",
    "GaussianMixture",
    "HeteroVAE",
    "ImageEncoder",
    "ParticleData",
    "SyntheticParticles",
    "TrainConfig",
    "VAEConfig",
    "adjusted_rand_index",
    "arm_model",
    "blob_model",
    "blob_particles",
    "build_model",
    "checkpoint_payload",
    "encode_latents",
    "fit",
    "fourier_points",
    "fourier_volume",
    "gaussian_mixture",
    "generate_volumes",
    "graph_traversal",
    "hermitian_half",
    "kl_divergence",
    "kmeans",
    "knn_graph",
    "model_from_checkpoint",
    "nearest_points",
    "pc_trajectory",
    "pca",
    "gaussian_encoding",
    "gaussian_frequencies",
    "positional_encoding",
    "reparameterize",
    "slice_coordinates",
    "spectrum_to_volume",
    "two_state_amplitudes",
    "umap_embedding",
]
