"""The cuboid scene drawn by a tight loop of our own, with pyrender's shader programs, buffers and framebuffers.

pyrender stays the scene description and the reference: its Mesh objects own the vertex arrays, its material
model is its compiled ``mesh.frag`` / ``segmentation.frag`` programs, its camera gives the projection, and its
offscreen framebuffers (4x multisampled, resolved by a blit) are the ones drawn into. What this module replaces is
pyrender's Python work per draw and per light (uniforms looked up by name and converted through PyOpenGL on every
draw, the light loop run once per cuboid, scene-graph walks for every pose): here uniform locations are looked up
once per program, every float of a frame is staged in one float32 array (one cast from float64, the same rounding
PyOpenGL applies value by value), GL state is set only when pyrender may have changed it, and a few dozen
plain ctypes calls draw, resolve and read back a frame.

Every value reaches the GPU exactly as pyrender would send it: poses pass through ``np.dot(pose, I)`` as
``Scene.get_pose`` does, lights fill the uniform arrays in the scene's (fixed) order, cuboids are drawn in
``Renderer._sorted_mesh_nodes`` order, and the same GL state is set. ``tests/test_render_paths.py`` checks the
RGB, depth and mask bytes against pyrender's own ``render()`` (``LATENTDS_RENDER_PATH=pyrender``).
"""

from __future__ import annotations

import ctypes
from ctypes import c_double, c_float, c_int, c_uint, c_ubyte, c_void_p

import numpy as np

from latentds.render.staging import stage

_EYE = np.eye(4)

# GL enums (glcorearb.h); the values are fixed by the OpenGL specification.
GL_DEPTH_BUFFER_BIT, GL_COLOR_BUFFER_BIT = 0x0100, 0x4000
GL_ZERO, GL_ONE = 0, 1
GL_LESS = 0x0201
GL_BACK, GL_FRONT_AND_BACK = 0x0405, 0x0408
GL_CULL_FACE, GL_DEPTH_TEST, GL_BLEND = 0x0B44, 0x0B71, 0x0BE2
GL_PACK_ALIGNMENT = 0x0D05
GL_UNSIGNED_BYTE, GL_UNSIGNED_INT, GL_FLOAT = 0x1401, 0x1405, 0x1406
GL_DEPTH_COMPONENT, GL_RGB = 0x1902, 0x1907
GL_FILL = 0x1B02
GL_NEAREST, GL_LINEAR = 0x2600, 0x2601
GL_MULTISAMPLE = 0x809D
GL_PROGRAM_POINT_SIZE = 0x8642
GL_READ_FRAMEBUFFER, GL_DRAW_FRAMEBUFFER = 0x8CA8, 0x8CA9


class GLCalls:
    """The GL entry points a frame needs, as plain ctypes functions of the library PyOpenGL loaded.

    PyOpenGL's wrappers spend 5-10 µs per call converting arguments; these take ints, floats and addresses
    and cost about 1 µs. ``benchmarks/render.py`` draws its raw-GL ceiling through this same class.
    """

    SIGNATURES = {
        "glBindFramebuffer": (None, c_uint, c_uint),
        "glViewport": (None, c_int, c_int, c_int, c_int),
        "glEnable": (None, c_uint),
        "glDisable": (None, c_uint),
        "glDepthMask": (None, c_ubyte),
        "glDepthFunc": (None, c_uint),
        "glDepthRange": (None, c_double, c_double),
        "glClearColor": (None, c_float, c_float, c_float, c_float),
        "glClear": (None, c_uint),
        "glUseProgram": (None, c_uint),
        "glGetUniformLocation": (c_int, c_uint, ctypes.c_char_p),
        "glUniform1i": (None, c_int, c_int),
        "glUniform1fv": (None, c_int, c_int, c_void_p),
        "glUniform3fv": (None, c_int, c_int, c_void_p),
        "glUniform4fv": (None, c_int, c_int, c_void_p),
        "glUniformMatrix4fv": (None, c_int, c_int, c_ubyte, c_void_p),
        "glBlendFunc": (None, c_uint, c_uint),
        "glPolygonMode": (None, c_uint, c_uint),
        "glCullFace": (None, c_uint),
        "glBindVertexArray": (None, c_uint),
        "glDrawArraysInstanced": (None, c_uint, c_int, c_int, c_int),
        "glDrawElementsInstanced": (None, c_uint, c_int, c_uint, c_void_p, c_int),
        "glBlitFramebuffer": (None, c_int, c_int, c_int, c_int, c_int, c_int, c_int, c_int, c_uint, c_uint),
        "glPixelStorei": (None, c_uint, c_int),
        "glReadPixels": (None, c_int, c_int, c_int, c_int, c_uint, c_uint, c_void_p),
        "glFlush": (None,),
    }

    def __init__(self):
        from OpenGL.platform import PLATFORM  # noqa: PLC0415  (after gl.activate chose the platform)

        # The same symbols PyOpenGL binds for core functions (ctypesloader.buildFunction on PLATFORM.GL).
        for name, (restype, *argtypes) in self.SIGNATURES.items():
            setattr(self, name, ctypes.CFUNCTYPE(restype, *argtypes)((name, PLATFORM.GL)))


class DirectDraw:
    """Draws ``scene.Frame``s of one CuboidRenderer's pyrender scene (see ``renderer.py``).

    ``renderer`` provides: ``gl`` (the pyrender OffscreenRenderer), ``scene``, ``cuboids`` (mesh nodes in the
    scene's order), ``spots`` and ``points`` (light nodes, slot order), ``camera`` (the camera node) and
    ``seg_colors`` (per cuboid, uint8 RGB).
    """

    def __init__(self, renderer):
        import pyrender  # noqa: PLC0415
        from pyrender.constants import ProgramFlags, RenderFlags  # noqa: PLC0415

        self.calls = GLCalls()
        self.offscreen = renderer.offscreen
        self.inner = inner = renderer.offscreen._renderer
        self.platform = renderer.offscreen._platform
        self._is_current = _current_context_check(self.platform)
        self.camera = renderer.camera.camera
        self.platform.make_current()
        inner._update_context(renderer.scene, RenderFlags.OFFSCREEN)  # vertex arrays of every mesh, once
        self.primitives = [node.mesh.primitives[0] for node in renderer.cuboids]
        materials = [p.material for p in self.primitives]  # Mesh.from_trimesh copies the material it is given
        for p, m in zip(self.primitives, materials):
            # What this loop does not implement (pyrender would): textures, instancing, blending, wireframe, and
            # material constants that differ between cuboids.
            assert p.poses is None and not m.tex_flags and not m.wireframe and not m.doubleSided
            assert isinstance(m, pyrender.MetallicRoughnessMaterial) and m.alphaMode != "BLEND"
            assert (m.emissiveFactor == materials[0].emissiveFactor).all()
            assert (m.metallicFactor, m.roughnessFactor) == (materials[0].metallicFactor, materials[0].roughnessFactor)
        self.draw_calls = [(p._vaid, p.mode, p.indices is not None,
                            p.indices.size if p.indices is not None else len(p.positions)) for p in self.primitives]
        # pyrender's programs for these primitives: the PBR one for colour, the flat one for segmentation.
        self.mesh_program = inner._get_primitive_program(
            self.primitives[0], RenderFlags.OFFSCREEN, ProgramFlags.USE_MATERIAL)._program_id
        self.seg_program = inner._get_primitive_program(
            self.primitives[0], RenderFlags.OFFSCREEN | RenderFlags.SEG, ProgramFlags.USE_MATERIAL)._program_id
        self.bg_color = [float(c) for c in renderer.scene.bg_color]
        self.znear, self.zfar = self.camera.znear, self.camera.zfar
        self._projections: dict[tuple[float, int], np.ndarray] = {}
        self._views: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # camera pose -> (V, camera location)
        self._size = None
        self.state = None  # the GL state this path last set: None (unknown), "colour" or "seg"
        self._layout(renderer, materials[0])

    # ---- once: uniform locations and where each value sits in the staging array ---------------------------------

    def _layout(self, renderer, material) -> None:
        gl, mesh, seg = self.calls, self.mesh_program, self.seg_program
        self.f64 = np.zeros(512)  # every float uniform of a frame, filled in float64 ...
        self.f32 = np.zeros(512, dtype=np.float32)  # ... and cast once: PyOpenGL's rounding, value by value
        base, used = self.f32.ctypes.data, 0

        def loc(program, name):
            location = gl.glGetUniformLocation(program, name.encode())
            if location < 0:
                raise RuntimeError(f"pyrender's program {program} has no uniform {name!r}")
            return location

        def put(n):  # n floats -> (offset, address)
            nonlocal used
            used += n
            return used - n, base + 4 * (used - n)

        self.V, self.P, self.cam_pos, self.ambient = put(16), put(16), put(3), put(3)
        emissive, metallic, roughness = put(3), put(1), put(1)
        self.f64[emissive[0]:emissive[0] + 3] = material.emissiveFactor
        self.f64[metallic[0]] = material.metallicFactor
        self.f64[roughness[0]] = material.roughnessFactor
        u1f, u3f = gl.glUniform1fv, gl.glUniform3fv
        # (function, location, address) of the uniforms that are the same for every cuboid of a frame ...
        self.frame_calls = [(u3f, loc(mesh, "cam_pos"), self.cam_pos[1]),
                            (u3f, loc(mesh, "ambient_light"), self.ambient[1])]
        # ... and of those that are the same for every frame
        self.constant_calls = [(u3f, loc(mesh, "material.emissive_factor"), emissive[1]),
                               (u1f, loc(mesh, "material.metallic_factor"), metallic[1]),
                               (u1f, loc(mesh, "material.roughness_factor"), roughness[1])]
        self.mesh_loc = {name: loc(mesh, name) for name in ("V", "P", "M", "material.base_color_factor",
                                                            "n_directional_lights", "n_spot_lights",
                                                            "n_point_lights")}
        self.seg_loc = {name: loc(seg, name) for name in ("V", "P", "M", "color")}

        # One block of floats per light slot, members in this order; calls to send a used slot.
        def light_block(array, i, members):
            offset, _ = put(sum(n for _, n in members))
            calls, at = [], offset
            for member, n in members:
                calls.append((u1f if n == 1 else u3f, loc(mesh, f"{array}[{i}].{member}"), base + 4 * at))
                at += n
            return offset, calls

        self.sun_block = light_block("directional_lights", 0, (("direction", 3), ("color", 3), ("intensity", 1)))
        self.spot_blocks = [light_block("spot_lights", i, (("direction", 3), ("position", 3), ("light_angle_scale", 1),
                                                           ("light_angle_offset", 1), ("color", 3), ("intensity", 1)))
                            for i in range(len(renderer.spots))]
        self.point_blocks = [light_block("point_lights", i, (("position", 3), ("color", 3), ("intensity", 1)))
                             for i in range(len(renderer.points))]
        # Per cuboid: model matrix (16), base colour (4), segmentation colour (3).
        self.cuboid_blocks = [(put(16), put(4), put(3)) for _ in self.primitives]
        for k, (_, _, (seg_offset, _)) in enumerate(self.cuboid_blocks):
            self.f64[seg_offset:seg_offset + 3] = np.asanyarray(renderer.seg_colors[k]) / 255.0  # as pyrender's SEG
        assert used <= len(self.f64)

    # ---- per frame ------------------------------------------------------------------------------------------------

    def _framebuffers(self, size: int) -> None:
        """pyrender's own offscreen framebuffers at ``size`` (re-allocated only when the size changes)."""
        if self._size != size or self.inner._main_fb_dims != (size, size):
            self.inner.viewport_width = self.inner.viewport_height = size
            self.offscreen.viewport_width = self.offscreen.viewport_height = size
            self.inner._configure_main_framebuffer()
            self._size = size
            self.state = None
            self._rgb = np.empty((size, size, 3), dtype=np.uint8)
            self._depth = np.empty((size, size), dtype=np.float32)

    def projection(self, yfov: float, size: int) -> np.ndarray:
        """The camera's projection matrix (flattened) at ``yfov`` radians and ``size`` px, made once per pair."""
        P = self._projections.get((yfov, size))
        if P is None:
            self.camera.yfov = yfov
            P = self._projections[(yfov, size)] = self.camera.get_projection_matrix(width=size, height=size).ravel()
        return P

    def view(self, camera_pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(view matrix flattened, camera location) of a camera pose, as pyrender derives them (Scene.get_pose is
        np.dot(matrix, I)). A preset's camera is fixed, so this is computed once per camera pose."""
        view = self._views.get(key := camera_pose.tobytes())
        if view is None:
            cam_pose = np.dot(camera_pose, _EYE)
            view = self._views[key] = (np.linalg.inv(cam_pose).ravel(), cam_pose[:3, 3].copy())
            if len(self._views) > 64:  # cameras that move (not a preset's): keep the cache small
                self._views.pop(next(iter(self._views)))
        return view

    def render(self, frame, size: int, depth: bool = False, mask: bool = False) -> dict[str, np.ndarray]:
        """``{"rgb"}``, plus the segmentation pass's ``"depth"`` (linear, 0 = background) and ``"seg"`` (its colour
        image) when ``depth`` or ``mask``: what pyrender's render() and render(flags=SEG) return.

        One sample from its Frame, one small numpy step at a time (the reference for ``staging.stage``, which
        derives the same values for a batch of labels; ``render_labels`` draws those)."""
        f64, dot = self.f64, np.dot
        view, cam_loc = self.view(frame.camera_pose)
        v, p, c, a = self.V[0], self.P[0], self.cam_pos[0], self.ambient[0]
        f64[v:v + 16] = view
        f64[p:p + 16] = self.projection(frame.yfov, size)
        f64[c:c + 3] = cam_loc
        f64[a:a + 3] = frame.ambient
        light = frame.sun
        pose = dot(light.pose, _EYE)
        o = self.sun_block[0]
        f64[o:o + 3] = -pose[:3, 2]
        f64[o + 3:o + 6] = light.color
        f64[o + 6] = light.intensity
        cos = np.cos
        for (o, _), light in zip(self.spot_blocks, frame.spots):
            pose = dot(light.pose, _EYE)
            f64[o:o + 3] = -pose[:3, 2]
            f64[o + 3:o + 6] = pose[:3, 3]
            # Renderer._bind_lighting's spot cone terms, in float64 as there
            las = 1.0 / max(0.001, cos(light.inner_cone) - cos(light.outer_cone))
            f64[o + 6] = las
            f64[o + 7] = -cos(light.outer_cone) * las
            f64[o + 8:o + 11] = light.color
            f64[o + 11] = light.intensity
        for (o, _), light in zip(self.point_blocks, frame.points):
            pose = dot(light.pose, _EYE)
            f64[o:o + 3] = pose[:3, 3]
            f64[o + 3:o + 6] = light.color
            f64[o + 6] = light.intensity
        distances = []
        norm = np.linalg.norm
        for k, (pose, color) in enumerate(zip(frame.cuboid_poses, frame.colors)):
            (m, _), (b, _), _ = self.cuboid_blocks[k]
            pose = dot(pose, _EYE)
            f64[m:m + 16] = pose.ravel()
            f64[b:b + 3] = color
            f64[b + 3] = 1.0
            distances.append(-norm(pose[:3, 3] - cam_loc))
        # Renderer._sorted_mesh_nodes: farthest first, a stable sort of the scene's (fixed) node order.
        order = sorted(range(len(distances)), key=distances.__getitem__)
        self.f32[:] = f64
        return self.draw(order, len(frame.spots), len(frame.points), size, depth, mask)

    def render_labels(self, labels: list[dict], size: int, depth: bool = False,
                      mask: bool = False) -> list[dict[str, np.ndarray]]:
        """``render(frame_of(lab))`` of each of ``labels``, with the values of the whole batch derived at once
        (``staging.stage``: the same values, in a fraction of the time)."""
        out = []
        for staged in stage(self, labels, size):
            self.f32[:] = staged.row
            out.append(self.draw(staged.order, staged.n_spots, staged.n_points, size, depth, mask))
        return out

    def draw(self, order: list, n_spots: int, n_points: int, size: int, depth: bool = False,
             mask: bool = False) -> dict[str, np.ndarray]:
        """Draw the frame whose values are in ``self.f32``: cuboids in ``order``, the first ``n_spots`` spot and
        ``n_points`` point light slots."""
        if not self._is_current():
            self.platform.make_current()
        if self._size != size or self.inner._main_fb_dims != (size, size):
            self._framebuffers(size)
        blocks = self.cuboid_blocks
        draws = [(k, blocks[k][0][1], blocks[k][1][1], blocks[k][2][1]) for k in order]
        out = {"rgb": self._colour_pass(n_spots, n_points, draws, size)}
        if depth or mask:
            out["seg"], out["depth"] = self._seg_pass(draws, size)
        return out

    def invalidate(self) -> None:
        """Forget the GL state this path set: after pyrender's own render() (which sets its own) or a new size."""
        self.state = None

    def _begin_pass(self, size: int, kind: str) -> bool:
        """Bind and clear the multisampled framebuffer for a ``"colour"`` or ``"seg"`` pass; set the GL state that
        Renderer._configure_forward_pass_viewport and _bind_and_draw_primitive set (the same for every cuboid
        here) only when the context may not hold it. True when the state was set from scratch."""
        gl = self.calls
        gl.glBindFramebuffer(GL_DRAW_FRAMEBUFFER, self.inner._main_fb_ms)
        scratch = self.state is None
        if scratch:
            gl.glViewport(0, 0, size, size)
            gl.glEnable(GL_DEPTH_TEST)
            gl.glDepthMask(1)
            gl.glDepthFunc(GL_LESS)
            gl.glDepthRange(0.0, 1.0)
            gl.glEnable(GL_BLEND)
            gl.glBlendFunc(GL_ONE, GL_ZERO)
            gl.glPolygonMode(GL_FRONT_AND_BACK, GL_FILL)
            gl.glEnable(GL_CULL_FACE)
            gl.glCullFace(GL_BACK)
            gl.glDisable(GL_PROGRAM_POINT_SIZE)
            gl.glPixelStorei(GL_PACK_ALIGNMENT, 1)
        if self.state != kind:
            colour = kind == "colour"
            gl.glClearColor(*(self.bg_color if colour else (0.0, 0.0, 0.0, 1.0)))
            (gl.glEnable if colour else gl.glDisable)(GL_MULTISAMPLE)  # the SEG pass samples pixel centres
            gl.glUseProgram(self.mesh_program if colour else self.seg_program)
            self.state = kind
        gl.glClear(GL_COLOR_BUFFER_BIT | GL_DEPTH_BUFFER_BIT)
        return scratch

    def _draw(self, k: int) -> None:
        vao, mode, indexed, count = self.draw_calls[k]
        self.calls.glBindVertexArray(vao)
        if indexed:
            self.calls.glDrawElementsInstanced(mode, count, GL_UNSIGNED_INT, None, 1)
        else:
            self.calls.glDrawArraysInstanced(mode, 0, count, 1)

    def _resolve(self, size: int, depth: bool) -> None:
        """Renderer._read_main_framebuffer's blit of the multisampled buffer into the plain one, bound for reading."""
        gl, main = self.calls, self.inner._main_fb
        gl.glBindFramebuffer(GL_READ_FRAMEBUFFER, self.inner._main_fb_ms)
        gl.glBindFramebuffer(GL_DRAW_FRAMEBUFFER, main)
        gl.glBlitFramebuffer(0, 0, size, size, 0, 0, size, size, GL_COLOR_BUFFER_BIT, GL_LINEAR)
        if depth:
            gl.glBlitFramebuffer(0, 0, size, size, 0, 0, size, size, GL_DEPTH_BUFFER_BIT, GL_NEAREST)
        gl.glBindFramebuffer(GL_READ_FRAMEBUFFER, main)

    def _read_rgb(self, size: int) -> np.ndarray:
        self.calls.glReadPixels(0, 0, size, size, GL_RGB, GL_UNSIGNED_BYTE, self._rgb.ctypes.data)
        return self._rgb[::-1].copy()  # GL's first row is the bottom one

    def _colour_pass(self, n_spots: int, n_points: int, draws, size: int) -> np.ndarray:
        gl, u = self.calls, self.mesh_loc
        if self._begin_pass(size, "colour"):
            # Uniforms that never change (pyrender's render() sets the same values): after a reset only.
            gl.glUniform1i(u["n_directional_lights"], 1)
            for fn, location, address in self.constant_calls:
                fn(location, 1, address)
        gl.glUniformMatrix4fv(u["V"], 1, 1, self.V[1])
        gl.glUniformMatrix4fv(u["P"], 1, 1, self.P[1])
        # Renderer._bind_lighting, once per frame instead of once per cuboid: all cuboids share this program.
        gl.glUniform1i(u["n_spot_lights"], n_spots)
        gl.glUniform1i(u["n_point_lights"], n_points)
        for fn, location, address in self.frame_calls:
            fn(location, 1, address)
        for calls in ([self.sun_block[1]] + [b[1] for b in self.spot_blocks[:n_spots]]
                      + [b[1] for b in self.point_blocks[:n_points]]):
            for fn, location, address in calls:
                fn(location, 1, address)
        uM, uColor, matrix4, vec4 = u["M"], u["material.base_color_factor"], gl.glUniformMatrix4fv, gl.glUniform4fv
        for k, m_address, b_address, _ in draws:
            matrix4(uM, 1, 1, m_address)
            vec4(uColor, 1, b_address)
            self._draw(k)
        self._resolve(size, depth=False)
        return self._read_rgb(size)

    def _seg_pass(self, draws, size: int) -> tuple[np.ndarray, np.ndarray]:
        gl, u = self.calls, self.seg_loc
        self._begin_pass(size, "seg")
        gl.glUniformMatrix4fv(u["V"], 1, 1, self.V[1])
        gl.glUniformMatrix4fv(u["P"], 1, 1, self.P[1])
        for k, m_address, _, s_address in draws:
            gl.glUniform3fv(u["color"], 1, s_address)
            gl.glUniformMatrix4fv(u["M"], 1, 1, m_address)
            self._draw(k)
        self._resolve(size, depth=True)
        gl.glReadPixels(0, 0, size, size, GL_DEPTH_COMPONENT, GL_FLOAT, self._depth.ctypes.data)
        return self._read_rgb(size), self._linear_depth(self._depth[::-1].copy())

    def _linear_depth(self, depth_im: np.ndarray) -> np.ndarray:
        """Renderer._read_main_framebuffer's conversion of the depth buffer to linear units (0 = background)."""
        inf_inds = depth_im == 1.0
        depth_im = 2.0 * depth_im - 1.0
        z_near, z_far = self.znear, self.zfar
        noninf = np.logical_not(inf_inds)
        if z_far is None:
            depth_im[noninf] = 2 * z_near / (1.0 - depth_im[noninf])
        else:
            depth_im[noninf] = ((2.0 * z_near * z_far) / (z_far + z_near - depth_im[noninf] * (z_far - z_near)))
        depth_im[inf_inds] = 0.0
        return depth_im


def _current_context_check(platform):
    """A cheap test that ``platform``'s context is current (pyrender makes it current before every render; one
    EGL call per frame instead of PyOpenGL's eglMakeCurrent wrapper)."""
    context = getattr(platform, "_egl_context", None)
    if context is None:
        return lambda: False
    from OpenGL.platform import PLATFORM  # noqa: PLC0415

    current = ctypes.CFUNCTYPE(c_void_p)(("eglGetCurrentContext", PLATFORM.EGL))
    ours = ctypes.cast(context, c_void_p).value
    return lambda: current() == ours
