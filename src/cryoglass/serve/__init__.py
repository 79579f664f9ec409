"""``cryoglass serve``: cryoglass commands as jobs on a project folder, and teaching explorers.

* :mod:`~cryoglass.serve.app` — :func:`create_app` (FastAPI: middleware and three routers,
  :mod:`~cryoglass.serve.routes_api` for ``/api/jobs``, :mod:`~cryoglass.serve.routes_explore`
  for the explorer PNGs, :mod:`~cryoglass.serve.routes_pages` for the HTML pages).
* :mod:`~cryoglass.serve.submit` — a submission's checks, saved uploads and queued job (shared
  by the API and the form).
* :mod:`~cryoglass.serve.jobs` — SQLite job records and the worker processes that run the
  cryoglass commands (on uploaded maps, or on project files), with cancel and delete.
* :mod:`~cryoglass.serve.lifeline` — workers die with their server (parent-death signal and
  watchdog); process identities (pid + start time) that let a restart kill only its own
  leftovers.
* :mod:`~cryoglass.serve.kinds` — the declared table of project job kinds (command, RELION
  job type, options) and :func:`~cryoglass.serve.kinds.build_argv`.
* :mod:`~cryoglass.serve.project` — the project folder: paths checked inside it, job numbers.
* :mod:`~cryoglass.serve.progress` — live progress and log from the commands' own bars.
* :mod:`~cryoglass.serve.explorers` — the CTF, blur/sharpen and Fourier-slice figures.

See docs/serve.md for the API.
"""

__all__ = ["create_app"]


def __getattr__(name: str):
    # lazy: worker processes import cryoglass.serve.jobs without FastAPI or torch
    if name == "create_app":
        from cryoglass.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'cryoglass.serve' has no attribute {name!r}")
