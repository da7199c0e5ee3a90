"""The same sample renders to the same bytes in every process.

The cause this guards against: pyrender keeps scene nodes in sets of objects hashed by ``id()`` (a memory address),
and filled the shader's spot- and point-light arrays in that set's order. The shader sums the lights in array
order, float addition is not associative, so some samples came out one grey level apart in different processes.
"""

import copy
import hashlib
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from latentds.render.factors import sample_labels

# Samples of (varied, seed 0, 64 px) whose pixels depend on the order in which two lights of one kind are summed:
# each came out in two variants across fresh processes before the fix (found by rendering 6,000 samples in three
# processes). Any one of them differs between two processes with probability about 1/2 when the order is left to
# memory addresses.
ORDER_SENSITIVE = [132, 1504, 2560, 3283, 3642, 3928, 5870, 5941]

_CHILD = """
import hashlib, json, sys
junk = [object() for _ in range({junk})]  # shifts the addresses of everything allocated after it
from latentds.render.factors import CUBOID, sample_labels
from latentds.render.renderer import CuboidRenderer
more = [[] for _ in range({junk} // 3)]
r = CuboidRenderer(64, CUBOID)  # its default path comes from LATENTDS_RENDER_PATH
out = {{"path": r.path}}
for path in ("direct", "pyrender"):
    for i in {indices!r}:
        images = r.render(sample_labels("varied", 0, i, 64), depth=i % 5 == 0, mask=i % 5 == 0, path=path)
        out[f"{{path}} {{i}}"] = {{k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in images.items()}}
print(json.dumps(out))
"""


def _start_fresh_process(indices, hash_seed, junk, path, lp_threads):
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), LP_NUM_THREADS=str(lp_threads), LATENTDS_RENDER_PATH=path)
    code = _CHILD.format(junk=junk, indices=list(indices))
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _hashes(proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_fresh_processes_with_different_memory_layouts_render_the_same_bytes():
    """Both render paths, in two processes that differ in hash seed, memory layout, llvmpipe threads and
    LATENTDS_RENDER_PATH: the same bytes everywhere."""
    indices = sorted(set(ORDER_SENSITIVE) | set(range(0, 600, 3)))  # 206 samples, depth and mask on a fifth
    a = _start_fresh_process(indices, hash_seed=1, junk=0, path="direct", lp_threads=0)
    b = _start_fresh_process(indices, hash_seed=2, junk=100_003, path="pyrender", lp_threads=2)
    a, b = _hashes(a), _hashes(b)
    assert (a.pop("path"), b.pop("path")) == ("direct", "pyrender")  # the environment switch chose the path
    assert a.keys() == b.keys() and len(a) == 2 * len(indices)
    differ = sorted(key for key in a if a[key] != b[key])
    assert not differ, f"rendered differently in two processes: {differ}"
    between_paths = [i for i in indices if a[f"direct {i}"] != a[f"pyrender {i}"]]
    assert not between_paths, f"the direct path differs from pyrender's render() on samples {between_paths}"


def test_the_order_in_which_lights_are_summed_changes_pixels(renderer):
    """The mechanism: the same lights in another uniform-array order give other bytes for these samples, so the
    order must not be left to the process (and is not: slot k holds the labels' light k)."""
    changed = []
    for i in ORDER_SENSITIVE[:4]:
        labels = sample_labels("varied", 0, i, 64)
        reference = renderer.render(labels)["rgb"]
        for kind in ("spot_lights", "point_lights"):
            for order in itertools.permutations(range(len(labels[kind]))):
                permuted = copy.deepcopy(labels)
                permuted[kind] = [labels[kind][k] for k in order]
                rgb = renderer.render(permuted)["rgb"]
                diff = np.abs(rgb.astype(int) - reference.astype(int))
                assert diff.max() <= 1  # the same light, summed in another order: a rounding difference at most
                if diff.any():
                    changed.append((i, kind, order))
    assert changed, "no light order changed a pixel: ORDER_SENSITIVE no longer exercises the summation order"


def test_the_scene_iterates_nodes_in_the_order_they_were_added(renderer):
    import pyrender

    scene = type(renderer.scene)()
    nodes = [pyrender.Node(light=pyrender.PointLight(intensity=1.0)) for _ in range(40)]
    nodes = list(set(nodes))[::-1]  # an order that a set of them does not iterate in
    assert list(set(nodes)) != nodes
    for node in nodes:
        scene.add_node(node)
    assert list(scene.point_light_nodes) == nodes
    assert list(scene.light_nodes) == nodes
    scene.remove_node(nodes[3])
    scene.add_node(nodes[3])  # back in its first place
    assert list(scene.point_light_nodes) == nodes


def test_the_renderers_lights_take_their_label_slots(renderer):
    labels = sample_labels("varied", 0, ORDER_SENSITIVE[2], 32)
    assert len(labels["spot_lights"]) == 4 and len(labels["point_lights"]) == 4
    renderer.render(labels, path="pyrender")
    scene = renderer.scene
    assert list(scene.spot_light_nodes) == renderer.spots
    assert list(scene.point_light_nodes) == renderer.points
    assert list(scene.mesh_nodes) == renderer.cuboids


def test_render_sha_is_stable_within_a_process(renderer):
    labels = sample_labels("varied", 0, ORDER_SENSITIVE[0], 64)
    first = hashlib.sha256(renderer.render(labels)["rgb"].tobytes()).digest()
    for i in range(20):  # other samples in between change which lights are attached
        renderer.render(sample_labels("varied", 3, i, 64))
    assert hashlib.sha256(renderer.render(labels)["rgb"].tobytes()).digest() == first
