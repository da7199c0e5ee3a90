"""One persistent pyrender scene per process, and two ways to draw it.

The scene is built once with everything a sample can use (4 cuboids, 1 directional, 4 spot and 4 point
lights). A sample's labels become a ``scene.Frame`` (poses, colours, lights, camera), which is drawn

- by default through ``direct_draw.DirectDraw``: pyrender's own compiled programs, vertex arrays and framebuffers,
  driven by a tight loop of our own (a few µs of Python per draw instead of pyrender's per-draw and per-light work);
- with ``LATENTDS_RENDER_PATH=pyrender``, by pyrender's ``render()`` on the scene updated in place: cuboids it does
  not use hidden (``Mesh.is_visible``), lights it does not use detached (pyrender sets every attached light's
  uniforms on every draw). This is the reference: the two paths give the same bytes (tests/test_render_paths.py).

Same bytes in every process: pyrender keeps scene nodes in Python sets, hashed by ``id()`` (a memory address), so
the order in which it filled the spot and point light uniform arrays, and hence the order in which the shader
summed the lights' contributions, differed from process to process. Float addition is not associative: 8 of
6,000 samples rendered in three processes came out in two variants, one pixel one grey level apart. The scene
(``_ordered_scene_class``) now iterates its nodes in the order they were added, and the direct path fills light
slot k with the labels' light k, as pyrender now does.

Paths that call ``Mesh.bounds`` (scene bounds, shadow maps) are never used: pyrender 0.1.45 uses ``np.infty``
there, which NumPy 2 removed.
"""

from __future__ import annotations

import os

import numpy as np

from latentds.errors import InvalidParameterError
from latentds.render import gl
from latentds.render.factors import MAX_CUBOIDS, MAX_POINT_LIGHTS, MAX_SPOT_LIGHTS
from latentds.render.scene import Frame, frame_of

# Segmentation colours: one primary-like colour per cuboid, so a blend at an anti-aliased edge stays
# closest to one of the cuboids it mixes (or to the background) when mapped back to ids.
SEG_COLORS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], dtype=np.uint8)

PATH_ENV = "LATENTDS_RENDER_PATH"
PATHS = ("direct", "pyrender")

_OFF = np.eye(4)


def render_path() -> str:
    """The draw path chosen by ``LATENTDS_RENDER_PATH`` (``direct``, the default, or ``pyrender``)."""
    path = os.environ.get(PATH_ENV, "direct") or "direct"
    if path not in PATHS:
        raise InvalidParameterError(f"{PATH_ENV}={path!r} is not a render path: set it to one of {', '.join(PATHS)} "
                                    "(or unset it for the default, direct)")
    return path


def _ordered_scene_class(pyrender):
    """A pyrender Scene whose mesh and light node collections iterate in a fixed order: first addition first.

    pyrender stores them in sets of Nodes, and a Node hashes by ``id()``, so iteration order depends on where the
    nodes happen to sit in memory: it differs between processes. ``Renderer._bind_lighting`` fills the shader's
    ``spot_lights[]`` and ``point_lights[]`` in that order and the shader sums the lights in array order, so the
    same sample rounded differently in different processes. The draw order (``_sorted_mesh_nodes``, a stable sort
    of ``mesh_nodes`` by distance) had the same dependence for ties.
    """

    class OrderedScene(pyrender.Scene):
        def __init__(self, *args, **kwargs):
            self._rank = {}
            super().__init__(*args, **kwargs)

        def add_node(self, node, parent_node=None):
            self._rank.setdefault(node, len(self._rank))  # kept when the node is removed and added again
            super().add_node(node, parent_node)

        def _ordered(self, nodes):
            return sorted(nodes, key=self._rank.__getitem__)

        @property
        def mesh_nodes(self):
            return self._ordered(self._mesh_nodes)

        @property
        def light_nodes(self):
            return self._ordered(self._point_light_nodes | self._spot_light_nodes | self._directional_light_nodes)

        @property
        def point_light_nodes(self):
            return self._ordered(self._point_light_nodes)

        @property
        def spot_light_nodes(self):
            return self._ordered(self._spot_light_nodes)

        @property
        def directional_light_nodes(self):
            return self._ordered(self._directional_light_nodes)

    return OrderedScene


class CuboidRenderer:
    """Renders sample labels (see ``factors.py``) to an RGB image, and optionally depth and a cuboid-id mask.

    ``path``: ``"direct"`` or ``"pyrender"`` (default: ``LATENTDS_RENDER_PATH``, else direct). Both give the same
    bytes; the direct path is several times faster. OSMesa (no framebuffer objects in pyrender) always uses pyrender.
    """

    def __init__(self, size: int, cuboid: dict, path: str | None = None):
        gl.activate()
        import pyrender  # noqa: PLC0415  (after gl.activate: PyOpenGL binds its platform at import)
        import trimesh  # noqa: PLC0415

        _cache_uniform_locations(pyrender)
        self._pyrender = pyrender
        self.size = size
        self.cuboid = dict(cuboid)
        self.scene = _ordered_scene_class(pyrender)(bg_color=[0.0, 0.0, 0.0, 1.0], ambient_light=[0.0, 0.0, 0.0])
        box = trimesh.creation.box(extents=[cuboid["length"], cuboid["height"], cuboid["width"]])
        self.materials, self.cuboids = [], []
        for _ in range(MAX_CUBOIDS):
            material = pyrender.MetallicRoughnessMaterial(
                baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.6)
            mesh = pyrender.Mesh.from_trimesh(box, material=material, smooth=False)
            self.materials.append(mesh.primitives[0].material)  # from_trimesh draws with a copy
            self.cuboids.append(self.scene.add(mesh, pose=_OFF))
        self.sun = self.scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=0.0), pose=_OFF)
        self.spots = [pyrender.Node(light=pyrender.SpotLight(color=np.ones(3), intensity=0.0), matrix=_OFF)
                      for _ in range(MAX_SPOT_LIGHTS)]
        self.points = [pyrender.Node(light=pyrender.PointLight(color=np.ones(3), intensity=0.0), matrix=_OFF)
                       for _ in range(MAX_POINT_LIGHTS)]
        # Every light joins once now, so that its rank (its uniform slot among its kind) is its index; a sample
        # then detaches the ones it does not use (see _apply).
        for node in self.spots + self.points:
            self.scene.add_node(node)
        self.camera = self.scene.add(pyrender.PerspectiveCamera(yfov=np.radians(45.0), znear=0.1, zfar=100.0),
                                     pose=_OFF)
        self.seg_colors = [SEG_COLORS[k] for k in range(MAX_CUBOIDS)]
        self.seg_map = dict(zip(self.cuboids, self.seg_colors))
        self.offscreen = pyrender.OffscreenRenderer(size, size)
        self.path = render_path() if path is None else path
        if self.path not in PATHS:
            raise InvalidParameterError(f"render path {self.path!r}: expected one of {', '.join(PATHS)}")
        self._direct = None
        if self.offscreen._platform.supports_framebuffers():
            from latentds.render.direct_draw import DirectDraw  # noqa: PLC0415

            self._direct = DirectDraw(self)
        else:
            self.path = "pyrender"

    def resize(self, size: int) -> None:
        """Change the output size; framebuffers are re-allocated on the next render."""
        self.size = size
        self.offscreen.viewport_width = self.offscreen.viewport_height = size

    def _apply(self, frame: Frame) -> None:
        """Update the pyrender scene in place to show ``frame`` (the pyrender path)."""
        scene = self.scene
        n = len(frame.cuboid_poses)
        for k, node in enumerate(self.cuboids):
            node.mesh.is_visible = k < n
        for node, pose, color in zip(self.cuboids, frame.cuboid_poses, frame.colors):
            scene.set_pose(node, pose)
            node.mesh.primitives[0].material.baseColorFactor = [*color, 1.0]
        scene.set_pose(self.sun, frame.sun.pose)
        self.sun.light.color, self.sun.light.intensity = frame.sun.color, frame.sun.intensity
        for nodes, lights in ((self.spots, frame.spots), (self.points, frame.points)):
            for k, node in enumerate(nodes):
                if k >= len(lights):
                    if scene.has_node(node):  # absent, not dark: every light in the scene costs per draw
                        scene.remove_node(node)
                    continue
                light = lights[k]
                if not scene.has_node(node):
                    scene.add_node(node)
                scene.set_pose(node, light.pose)
                node.light.color, node.light.intensity = light.color, light.intensity
                if light.inner_cone is not None:
                    node.light.innerConeAngle = 0.0  # pyrender checks inner <= outer on each set
                    node.light.outerConeAngle = light.outer_cone
                    node.light.innerConeAngle = light.inner_cone
        self.camera.camera.yfov = frame.yfov
        scene.set_pose(self.camera, frame.camera_pose)
        scene.ambient_light = np.full(3, frame.ambient)

    def _check(self, labels: dict) -> None:
        if labels["size"] != self.size:
            self.resize(labels["size"])
        if any(labels["cuboid"][k] != self.cuboid[k] for k in self.cuboid):
            raise ValueError(f"this renderer was built for cuboids {self.cuboid}, not {labels['cuboid']}")

    @staticmethod
    def _outputs(images: dict, depth: bool, mask: bool) -> dict[str, np.ndarray]:
        out = {"rgb": images["rgb"]}
        if depth:
            out["depth"] = images["depth"]
        if mask:
            out["mask"] = seg_to_ids(images["seg"])
        return out

    def render(self, labels: dict, depth: bool = False, mask: bool = False,
               path: str | None = None) -> dict[str, np.ndarray]:
        """Render one sample: ``{"rgb": (S,S,3) uint8}`` plus ``"depth"`` (float32, 0 = background) and
        ``"mask"`` (uint8: 0 background, k+1 on cuboid k) when asked. ``path`` overrides ``self.path``."""
        self._check(labels)
        frame = frame_of(labels)
        if (path or self.path) == "direct" and self._direct is not None:
            return self._outputs(self._direct.render(frame, self.size, depth=depth, mask=mask), depth, mask)
        return self._render_pyrender(frame, depth, mask)

    def render_batch(self, labels: list[dict], depth: bool = False, mask: bool = False,
                     path: str | None = None) -> list[dict[str, np.ndarray]]:
        """``render`` of each of ``labels`` (same bytes); on the direct path the batch's uniform values are
        derived together (``staging.py``), which takes ~45 µs of CPU off each image at 64 px."""
        if not labels:
            return []
        if (path or self.path) != "direct" or self._direct is None or len({lab["size"] for lab in labels}) > 1:
            return [self.render(lab, depth=depth, mask=mask, path=path) for lab in labels]
        for lab in labels:
            self._check(lab)
        return [self._outputs(images, depth, mask)
                for images in self._direct.render_labels(labels, self.size, depth=depth, mask=mask)]

    def _render_pyrender(self, frame: Frame, depth: bool, mask: bool) -> dict[str, np.ndarray]:
        self._apply(frame)
        if self._direct is not None:
            self._direct.invalidate()  # pyrender sets GL state of its own
        color, _ = self.offscreen.render(self.scene)
        out = {"rgb": np.ascontiguousarray(color)}
        if depth or mask:
            # The segmentation pass samples each pixel once at its centre (no multisampling), so its depth and
            # ids agree pixel for pixel; the colour pass's depth comes from one arbitrary multisample.
            seg, z = self.offscreen.render(self.scene, flags=self._pyrender.RenderFlags.SEG, seg_node_map=self.seg_map)
            if depth:
                out["depth"] = np.ascontiguousarray(z, dtype=np.float32)
            if mask:
                out["mask"] = seg_to_ids(seg)
        return out


def seg_to_ids(seg: np.ndarray) -> np.ndarray:
    """Map a segmentation render (SEG_COLORS, blended at edges) to ids: 0 background, k+1 for cuboid k.

    A pixel is background when less than half covered (its brightest channel < 128); otherwise it takes the
    cuboid whose colour direction is nearest. The segmentation pass is single-sampled, so its pixels are exactly
    black or one of SEG_COLORS: those are looked up (a few µs); any other pixel takes the general rule.
    """
    pure = (seg == 0) | (seg == 255)
    if pure.all():
        on = seg == 255
        ids = _PURE_IDS[on[..., 0] * 1 + on[..., 1] * 2 + on[..., 2] * 4]
        if (ids != _MIXED).all():
            return ids
    return _nearest_seg_color(seg)


def _nearest_seg_color(seg: np.ndarray) -> np.ndarray:
    seg = seg.astype(np.float32)
    unit = SEG_COLORS.astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    ids = np.argmax(seg @ unit.T, axis=-1).astype(np.uint8) + 1
    ids[seg.max(axis=-1) < 128] = 0
    return ids


# ids of the pure colours by (red, green, blue) == 255 as bits; _MIXED marks colours that are not SEG_COLORS
_MIXED = 255
_PURE_IDS = np.full(8, _MIXED, dtype=np.uint8)
_PURE_IDS[0] = 0
for _k, _color in enumerate(SEG_COLORS):
    _PURE_IDS[int(_color[0] == 255) + 2 * int(_color[1] == 255) + 4 * int(_color[2] == 255)] = _k + 1


_UNIFORM_LOCATIONS: dict[tuple[int, str], int] = {}


def _cache_uniform_locations(pyrender) -> None:
    """Memoise glGetUniformLocation for pyrender's shader programs.

    pyrender looks every uniform up by name on every draw (about 45 look-ups per cuboid per image here);
    a program's locations never change while it lives, so one look-up per (program, name) is enough.
    """
    from pyrender import shader_program  # noqa: PLC0415

    lookup = shader_program.glGetUniformLocation
    if getattr(lookup, "memoised", False):
        return

    def cached(program_id, name):
        key = (int(program_id), name)
        loc = _UNIFORM_LOCATIONS.get(key)
        if loc is None:
            loc = _UNIFORM_LOCATIONS[key] = lookup(program_id, name)
        return loc

    cached.memoised = True
    shader_program.glGetUniformLocation = cached


_RENDERER: CuboidRenderer | None = None


def process_renderer(size: int, cuboid: dict) -> CuboidRenderer:
    """This process's renderer, created on first use and reused (re-creating EGL contexts is fragile)."""
    global _RENDERER
    if _RENDERER is None:
        _RENDERER = CuboidRenderer(size, cuboid)
    return _RENDERER
