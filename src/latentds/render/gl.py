"""Headless OpenGL: pick a platform that works (EGL, then OSMesa) before pyrender is imported.

PyOpenGL binds its platform when first imported, so a failed attempt cannot be retried in the same process:
each candidate is tried once in a short-lived child process, and the first that renders a frame wins.
``PYOPENGL_PLATFORM``, when set, is the only candidate.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

from latentds.errors import GLUnavailableError

CANDIDATES = ("egl", "osmesa")
# Set by a process that has already probed, so that the worker processes it starts need not probe again.
CHOSEN_ENV = "LATENTDS_GL_PLATFORM"

_PROBE = """
import numpy as np, pyrender, trimesh
r = pyrender.OffscreenRenderer(8, 8)
s = pyrender.Scene()
s.add(pyrender.Mesh.from_trimesh(trimesh.creation.box()))
pose = np.eye(4); pose[2, 3] = 3.0
s.add(pyrender.PerspectiveCamera(yfov=1.0), pose=pose)
color, _ = r.render(s)
assert color.shape == (8, 8, 3) and color.any(), "rendered an empty frame"
r.delete()
"""

_INSTALL_HINT = ("install Mesa's EGL (Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri) or OSMesa "
                 "(apt-get install libosmesa6), or on a GPU machine the vendor's EGL driver")


def _probe(platform: str) -> str | None:
    """None if ``platform`` renders a frame in a fresh process, else the last line of its error."""
    env = dict(os.environ, PYOPENGL_PLATFORM=platform, LP_NUM_THREADS=os.environ.get("LP_NUM_THREADS", "0"))
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "timed out after 120 s"
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


@functools.cache
def headless_platform() -> str:
    """The PyOpenGL platform to render with; raises GLUnavailableError naming what to install."""
    if "OpenGL" in sys.modules:  # already bound in this process: nothing left to choose
        return os.environ.get("PYOPENGL_PLATFORM", "")
    if os.environ.get(CHOSEN_ENV):
        return os.environ[CHOSEN_ENV]
    chosen = os.environ.get("PYOPENGL_PLATFORM")
    candidates = (chosen,) if chosen else CANDIDATES
    failures = {}
    for platform in candidates:
        error = _probe(platform)
        if error is None:
            return platform
        failures[platform] = error
    tried = "; ".join(f"{p}: {e}" for p, e in failures.items())
    if chosen:
        raise GLUnavailableError(f"headless OpenGL failed with PYOPENGL_PLATFORM={chosen} ({tried}); "
                                 f"unset PYOPENGL_PLATFORM to let latentds try {' and '.join(CANDIDATES)}, "
                                 f"or {_INSTALL_HINT}")
    raise GLUnavailableError(f"no headless OpenGL platform works ({tried}); {_INSTALL_HINT}")


def activate() -> str:
    """Choose the platform and export it (and llvmpipe rasterising in the calling thread) before pyrender is
    imported.

    Also turns off PyOpenGL's glGetError after every call (its documented ``ERROR_CHECKING`` switch): that check
    is a large share of pyrender's per-draw cost. Set ``LATENTDS_GL_ERROR_CHECKING=1`` to keep it when debugging.
    """
    platform = headless_platform()
    if platform:
        os.environ["PYOPENGL_PLATFORM"] = platform
    _load_triton_first()
    # llvmpipe rasterises in the calling thread: we run one process per core already, and handing every frame to
    # a rasterizer thread and waiting for it only adds thread switches (about 5% more CPU per image, measured).
    # The thread count does not change a pixel (checked: the same bytes with 0, 1 and the default).
    os.environ.setdefault("LP_NUM_THREADS", "0")
    if "OpenGL" not in sys.modules and os.environ.get("LATENTDS_GL_ERROR_CHECKING", "0") == "0":
        import OpenGL  # noqa: PLC0415

        OpenGL.ERROR_CHECKING = False
        # PyOpenGL 3.1.0's EGL bindings read an error checker that it only defines when checking is on.
        import OpenGL.raw.EGL._errors as egl_errors  # noqa: PLC0415

        if not hasattr(egl_errors, "_error_checker"):
            egl_errors._error_checker = None
    return platform


def _load_triton_first() -> None:
    """Import triton (when installed, as with torch) before Mesa loads: both bring their own LLVM, and importing
    triton after Mesa's llvmpipe is loaded segfaults the process -- e.g. ``import torchvision`` (which imports
    triton) after an in-process render, as a notebook that renders and then trains does. The other order works."""
    import importlib.util  # noqa: PLC0415

    if "triton" not in sys.modules and importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401, PLC0415
