"""One persistent pyrender scene per process, updated in place for every sample.

The scene is built once with everything a sample can use (4 cuboids, 1 directional, 4 spot and 4 point
lights); a sample only moves nodes, sets colours and intensities, hides the cuboids it does not use
(``Mesh.is_visible``) and detaches the lights it does not use (pyrender sets every light's uniforms on every
draw, so an unused light would cost as much as a used one). GPU buffers are uploaded once per mesh; pyrender
compiles one shader program per combination of light counts (at most 25) and caches it.

Paths that call ``Mesh.bounds`` (scene bounds, shadow maps) are never used: pyrender 0.1.45 uses ``np.infty``
there, which NumPy 2 removed.
"""

from __future__ import annotations

import numpy as np

from latentds.render import gl
from latentds.render.factors import MAX_CUBOIDS, MAX_POINT_LIGHTS, MAX_SPOT_LIGHTS
from latentds.render.scene import cuboid_poses, orbit_pose

# Segmentation colours: one primary-like colour per cuboid, so a blend at an anti-aliased edge stays
# closest to one of the cuboids it mixes (or to the background) when mapped back to ids.
SEG_COLORS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], dtype=np.uint8)

_OFF = np.eye(4)


class CuboidRenderer:
    """Renders sample labels (see ``factors.py``) to an RGB image, and optionally depth and a cuboid-id mask."""

    def __init__(self, size: int, cuboid: dict):
        gl.activate()
        import pyrender  # noqa: PLC0415  (after gl.activate: PyOpenGL binds its platform at import)
        import trimesh  # noqa: PLC0415

        _cache_uniform_locations(pyrender)
        self._pyrender = pyrender
        self.size = size
        self.cuboid = dict(cuboid)
        self.scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 1.0], ambient_light=[0.0, 0.0, 0.0])
        box = trimesh.creation.box(extents=[cuboid["length"], cuboid["height"], cuboid["width"]])
        self.materials, self.cuboids = [], []
        for _ in range(MAX_CUBOIDS):
            material = pyrender.MetallicRoughnessMaterial(
                baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.6)
            mesh = pyrender.Mesh.from_trimesh(box, material=material, smooth=False)
            self.materials.append(material)
            self.cuboids.append(self.scene.add(mesh, pose=_OFF))
        self.sun = self.scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=0.0), pose=_OFF)
        # Spot and point light nodes join the scene only while a sample uses them (see _pose).
        self.spots = [pyrender.Node(light=pyrender.SpotLight(color=np.ones(3), intensity=0.0), matrix=_OFF)
                      for _ in range(MAX_SPOT_LIGHTS)]
        self.points = [pyrender.Node(light=pyrender.PointLight(color=np.ones(3), intensity=0.0), matrix=_OFF)
                       for _ in range(MAX_POINT_LIGHTS)]
        self.camera = self.scene.add(pyrender.PerspectiveCamera(yfov=np.radians(45.0), znear=0.1, zfar=100.0),
                                     pose=_OFF)
        self.seg_map = {node: SEG_COLORS[k] for k, node in enumerate(self.cuboids)}
        self.gl = pyrender.OffscreenRenderer(size, size)
        self._bind_lighting_once_per_frame()

    def _bind_lighting_once_per_frame(self) -> None:
        """Make pyrender set the light uniforms once per program per frame instead of once per cuboid.

        pyrender re-sends every light's uniforms before each draw; all our cuboids share one program, whose
        uniforms keep their values between draws, so the repeats only cost time (a third of it, measured).
        """
        inner = self.gl._renderer
        original = inner._bind_lighting
        self._frame, bound = 0, set()

        def bind_lighting(scene, program, node, flags):
            key = (self._frame, program._program_id)
            if key not in bound:
                if len(bound) > 64:
                    bound.clear()
                bound.add(key)
                original(scene, program, node, flags)

        inner._bind_lighting = bind_lighting

    def resize(self, size: int) -> None:
        """Change the output size; pyrender re-allocates its framebuffers on the next render."""
        self.size = size
        self.gl.viewport_width = self.gl.viewport_height = size

    def _pose(self, labels: dict) -> None:
        scene = self.scene
        n = labels["n_cuboids"]
        for k, node in enumerate(self.cuboids):
            node.mesh.is_visible = k < n
        for node, pose, color in zip(self.cuboids, cuboid_poses(labels), labels["colors"]):
            scene.set_pose(node, pose)
            node.mesh.primitives[0].material.baseColorFactor = [*color, 1.0]
        light = labels["light"]
        scene.set_pose(self.sun, orbit_pose(light))
        self.sun.light.color, self.sun.light.intensity = light["color"], light["intensity"]
        for nodes, specs in ((self.spots, labels["spot_lights"]), (self.points, labels["point_lights"])):
            for k, node in enumerate(nodes):
                if k >= len(specs):
                    if scene.has_node(node):  # absent, not dark: every light in the scene costs per draw
                        scene.remove_node(node)
                    continue
                spec = specs[k]
                if not scene.has_node(node):
                    scene.add_node(node)
                scene.set_pose(node, orbit_pose(spec))
                node.light.color, node.light.intensity = spec["color"], spec["intensity"]
                if "inner_cone" in spec:
                    node.light.innerConeAngle = 0.0  # pyrender checks inner <= outer on each set
                    node.light.outerConeAngle = spec["outer_cone"]
                    node.light.innerConeAngle = spec["inner_cone"]
        cam = labels["camera"]
        self.camera.camera.yfov = np.radians(cam["yfov"])
        scene.set_pose(self.camera, orbit_pose(cam))
        scene.ambient_light = np.full(3, labels["ambient"])

    def render(self, labels: dict, depth: bool = False, mask: bool = False) -> dict[str, np.ndarray]:
        """Render one sample: ``{"rgb": (S,S,3) uint8}`` plus ``"depth"`` (float32, 0 = background) and
        ``"mask"`` (uint8: 0 background, k+1 on cuboid k) when asked."""
        if labels["size"] != self.size:
            self.resize(labels["size"])
        if any(labels["cuboid"][k] != self.cuboid[k] for k in self.cuboid):
            raise ValueError(f"this renderer was built for cuboids {self.cuboid}, not {labels['cuboid']}")
        self._pose(labels)
        self._frame += 1
        color, _ = self.gl.render(self.scene)
        out = {"rgb": np.ascontiguousarray(color)}
        if depth or mask:
            # The segmentation pass samples each pixel once at its centre (no multisampling), so its depth and
            # ids agree pixel for pixel; the colour pass's depth comes from one arbitrary multisample.
            seg, z = self.gl.render(self.scene, flags=self._pyrender.RenderFlags.SEG, seg_node_map=self.seg_map)
            if depth:
                out["depth"] = np.ascontiguousarray(z, dtype=np.float32)
            if mask:
                out["mask"] = seg_to_ids(seg)
        return out

    def close(self) -> None:
        self.gl.delete()
        _UNIFORM_LOCATIONS.clear()  # program ids may be reused by a later context


def seg_to_ids(seg: np.ndarray) -> np.ndarray:
    """Map a segmentation render (SEG_COLORS, blended at edges) to ids: 0 background, k+1 for cuboid k.

    A pixel is background when less than half covered (its brightest channel < 128); otherwise it takes the
    cuboid whose colour direction is nearest.
    """
    seg = seg.astype(np.float32)
    unit = SEG_COLORS.astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    ids = np.argmax(seg @ unit.T, axis=-1).astype(np.uint8) + 1
    ids[seg.max(axis=-1) < 128] = 0
    return ids


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
