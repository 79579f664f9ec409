"""The demo behind `cryoglass demo`: :mod:`~cryoglass.demos.pipeline` (the main job, from an
atomic model to a sharpened map) and one module per topic section (``run(out, seed=)``)."""
