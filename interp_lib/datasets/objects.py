r"""Rotating objects: shaded convex polyhedra rendered at many angles (pure torch).

An offline analogue of the 1440-image set of Ansuini et al. (20 objects x 72 poses): a
seeded generator builds distinct convex solids (prisms, frusta, pyramids, bipyramids,
boxes, random hulls) with two-tone colours, spins each one about the vertical axis of a
tilted camera and renders it with Lambert + specular shading.

Rendering is analytic and anti-aliased, with no supersampling: every front-facing
triangle covers pixel :math:`q` by

.. math:: c(q) = \mathrm{clip}\Big(\sum_{e=1}^{3} \mathrm{clip}(\tfrac12 + s_e(q), 0, 1)
          - 2,\ 0,\ 1\Big),

where :math:`s_e` is the signed distance (in pixels, positive inside) to edge :math:`e`.
The coverages of two triangles that share an edge add up to one across it, a triangle
turning edge-on fades to zero coverage before it is culled, and shading is a continuous
function of the rotated normals, so every pixel is a continuous function of the angle:
one object's images trace a closed 1-D curve in pixel space (TwoNN gives an ID near 1).
Convex solids need no depth sorting: their front faces never overlap.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import check_int

__all__ = ["make_object", "render_object", "rotating_objects"]

FAMILIES = ("prism", "frustum", "pyramid", "bipyramid", "box", "blob")


def _polygon(rng: np.random.Generator, n: int, radius: float = 1.0) -> np.ndarray:
    """An irregular convex-ish polygon of ``n`` vertices in the xz-plane, shape (n, 2)."""
    ang = np.sort(rng.uniform(0, 2 * np.pi, n) * 0.35 + np.arange(n) * 2 * np.pi / n)
    r = radius * rng.uniform(0.7, 1.0, n)
    return np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1)


def _points(family: str, rng: np.random.Generator) -> np.ndarray:
    """Corner points of one solid of the given family, shape (n, 3) (y is up)."""
    n = int(rng.integers(3, 8))
    if family == "prism":
        p, h = _polygon(rng, n), rng.uniform(0.5, 1.8)
        return np.concatenate([np.c_[p[:, 0], np.full(n, -h / 2), p[:, 1]],
                               np.c_[p[:, 0], np.full(n, h / 2), p[:, 1]]])  # fmt: skip
    if family == "frustum":
        p, h, k = _polygon(rng, n), rng.uniform(0.6, 1.6), rng.uniform(0.3, 0.6)
        return np.concatenate([np.c_[p[:, 0], np.full(n, -h / 2), p[:, 1]],
                               np.c_[k * p[:, 0], np.full(n, h / 2), k * p[:, 1]]])  # fmt: skip
    if family == "pyramid":
        p, h = _polygon(rng, n), rng.uniform(0.8, 2.0)
        apex = np.array([[rng.uniform(-0.3, 0.3), h, rng.uniform(-0.3, 0.3)]])
        return np.concatenate([np.c_[p[:, 0], np.zeros(n), p[:, 1]], apex])
    if family == "bipyramid":
        p = _polygon(rng, n)
        apexes = np.array([[0.0, rng.uniform(0.6, 1.5), 0.0], [0.0, -rng.uniform(0.6, 1.5), 0.0]])
        return np.concatenate([np.c_[p[:, 0], np.zeros(n), p[:, 1]], apexes])
    if family == "box":
        dims = rng.uniform(0.4, 1.6, 3)
        corners = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
        pts = corners * dims / 2 + rng.normal(0.0, 0.05, (8, 3))
        cut = rng.integers(0, 8)  # chamfer one corner: replace it by three points
        c = pts[cut]
        others = [pts[m] for m in range(8) if bin(m ^ int(cut)).count("1") == 1]
        chamfer = [c + 0.35 * (o - c) for o in others]
        return np.concatenate([np.delete(pts, cut, axis=0), np.array(chamfer)])
    # "blob": random points on an ellipsoid
    m = int(rng.integers(9, 16))
    v = rng.normal(size=(m, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v * rng.uniform(0.5, 1.2, 3)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def make_object(
    family: str, seed: int, hue: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Build one convex solid: vertices, outward-oriented triangles and face colours.

    Parameters
    ----------
    family : one of ``FAMILIES``
        Kind of solid.
    seed : int
        Seed of its proportions, initial orientation and colours.
    hue : float in [0, 1), optional
        Hue of the main colour (random if None); the second colour is a contrasting hue.

    Returns
    -------
    vertices : torch.Tensor, shape (V, 3), float64, centred, max radius 1
    faces : torch.Tensor, shape (F, 3), int64, counter-clockwise seen from outside
    colors : torch.Tensor, shape (F, 3), float64 albedo in [0, 1]
    """
    from scipy.spatial import ConvexHull

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}.")
    rng = np.random.default_rng(seed)
    pts = _points(family, rng)
    pts = pts - pts.mean(axis=0)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))  # random initial orientation
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    pts = pts @ q.T
    hull = ConvexHull(pts)
    pts = pts - pts[hull.vertices].mean(axis=0)
    pts = pts / np.linalg.norm(pts, axis=1).max()
    faces = hull.simplices.copy()
    normals = hull.equations[:, :3]
    a, b, c = pts[faces[:, 0]], pts[faces[:, 1]], pts[faces[:, 2]]
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), normals) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    h = rng.uniform() if hue is None else float(hue)
    c1 = _hsv(h, rng.uniform(0.55, 0.9), rng.uniform(0.75, 1.0))
    c2 = _hsv((h + rng.uniform(0.3, 0.7)) % 1.0, rng.uniform(0.3, 0.9), rng.uniform(0.5, 1.0))
    u = rng.normal(size=3)
    second = normals @ (u / np.linalg.norm(u)) > 0.35
    colors = np.where(second[:, None], c2, c1)
    return torch.from_numpy(pts), torch.from_numpy(faces).long(), torch.from_numpy(colors)


def _rotations(angles: torch.Tensor, elevation: float) -> torch.Tensor:
    """Spin about the vertical axis, then tilt the camera: shape (P, 3, 3)."""
    c, s = torch.cos(angles), torch.sin(angles)
    z, o = torch.zeros_like(angles), torch.ones_like(angles)
    ry = torch.stack([c, z, s, z, o, z, -s, z, c], dim=1).view(-1, 3, 3)
    ce, se = math.cos(elevation), math.sin(elevation)
    rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, ce, -se], [0.0, se, ce]], dtype=angles.dtype)
    return rx @ ry


def render_object(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    colors: torch.Tensor,
    angles: torch.Tensor,
    *,
    image_size: int = 64,
    elevation: float = 0.45,
    background: float = 0.15,
    chunk_size: int = 16,
) -> torch.Tensor:
    """Render a convex solid at the given rotation angles about the vertical axis.

    Parameters
    ----------
    vertices : torch.Tensor, shape (V, 3)
        Vertices inside the unit ball (y up, camera on +z looking down -z).
    faces : torch.Tensor, shape (F, 3)
        Triangles, counter-clockwise seen from outside.
    colors : torch.Tensor, shape (F, 3)
        Albedo of every triangle.
    angles : torch.Tensor, shape (P,)
        Rotation angles in radians.
    image_size : int
        Image side in pixels.
    elevation : float
        Camera tilt in radians (so that the top of the solid is seen).
    background : float
        Grey level of the background.
    chunk_size : int
        Poses rendered at once (memory ~ chunk_size x F x 3 x image_size^2 floats).

    Returns
    -------
    torch.Tensor, shape (P, 3, image_size, image_size), float32 in [0, 1]
    """
    dt = torch.float32
    angles = torch.as_tensor(angles, dtype=dt).flatten()
    v = vertices.to(dt)
    col = colors.to(dt)
    light = torch.tensor([-0.4, 0.6, 0.7], dtype=dt)
    light = light / light.norm()
    half = light + torch.tensor([0.0, 0.0, 1.0], dtype=dt)
    half = half / half.norm()
    ys, xs = torch.meshgrid(torch.arange(image_size, dtype=dt) + 0.5, torch.arange(image_size, dtype=dt) + 0.5,
                            indexing="ij")  # fmt: skip
    pix = torch.stack(
        [xs.flatten(), ys.flatten(), torch.ones(image_size * image_size, dtype=dt)]
    )  # (3, HW)
    scale = 0.46 * image_size
    out = []
    for start in range(0, angles.numel(), chunk_size):
        rot = _rotations(angles[start : start + chunk_size], elevation)  # (P, 3, 3)
        w = torch.einsum("pij,vj->pvi", rot, v)  # (P, V, 3)
        tri = w[:, faces]  # (P, F, 3, 3)
        n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        front = (n[..., 2] > 0).to(dt)  # (P, F)
        # screen coordinates: x right, y down
        sx = tri[..., 0] * scale + image_size / 2
        sy = -tri[..., 1] * scale + image_size / 2
        x0, y0 = sx, sy
        x1, y1 = sx.roll(-1, dims=-1), sy.roll(-1, dims=-1)
        ex, ey = x1 - x0, y1 - y0
        length = torch.sqrt(ex * ex + ey * ey).clamp_min(1e-9)
        # front faces are clockwise on screen (y points down): inside is cross(e, q - p0) < 0
        a, b = ey / length, -ex / length
        cc = -(a * x0 + b * y0)
        coef = torch.stack([a, b, cc], dim=-1)  # (P, F, 3 edges, 3)
        sd = torch.einsum("pfek,kq->pfeq", coef, pix)  # (P, F, 3, HW)
        cov = ((0.5 + sd).clamp(0.0, 1.0).sum(dim=2) - 2.0).clamp(0.0, 1.0)
        cov = cov * front.unsqueeze(-1)  # (P, F, HW)
        diffuse = (n @ light).clamp_min(0.0)
        spec = (n @ half).clamp_min(0.0) ** 24
        shade = col * (0.3 + 0.7 * diffuse).unsqueeze(-1) + 0.25 * spec.unsqueeze(-1)
        total = cov.sum(dim=1, keepdim=True)  # (P, 1, HW)
        cov = cov / total.clamp_min(1.0)
        img = torch.einsum("pfq,pfc->pcq", cov, shade) + background * (1 - total.clamp(max=1.0))
        out.append(img.clamp(0.0, 1.0).view(-1, 3, image_size, image_size))
    return torch.cat(out)


def rotating_objects(
    n_objects: int = 20,
    n_poses: int = 72,
    *,
    image_size: int = 64,
    seed: int = 0,
    angles: str = "random",
    elevation: float = 0.45,
    background: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct convex solids, each rendered at ``n_poses`` rotation angles.

    Parameters
    ----------
    n_objects : int
        Number of objects (= classes). Families cycle through ``FAMILIES``; hues are
        spread evenly over the colour wheel and shuffled.
    n_poses : int
        Poses per object (72 = one every 5 degrees, as in Ansuini et al.).
    image_size : int
        Image side in pixels.
    seed : int
        Seed of the shapes, colours and (for ``angles="random"``) the angles.
    angles : {"grid", "random"}
        ``"grid"``: ``2 pi k / n_poses``, k = 0..n_poses-1. ``"random"``: i.i.d. uniform in
        ``[0, 2 pi)``, sorted (what TwoNN assumes: a grid makes the two nearest-neighbour
        distances almost equal).
    elevation, background : float
        Camera tilt (radians) and background grey level, see :func:`render_object`.

    Returns
    -------
    images : torch.Tensor, shape (n_objects * n_poses, 3, image_size, image_size), float32 in [0, 1]
    labels : torch.Tensor, shape (n_objects * n_poses,), int64 object identity
    angles : torch.Tensor, shape (n_objects * n_poses,), float32 radians
    """
    n_objects = check_int(n_objects, "n_objects")
    n_poses = check_int(n_poses, "n_poses")
    image_size = check_int(image_size, "image_size", minimum=4)
    if angles not in ("grid", "random"):
        raise ValueError(f"angles must be 'grid' or 'random', got {angles!r}.")
    g = torch.Generator().manual_seed(int(seed))
    hues = torch.randperm(n_objects, generator=g).double() + torch.rand(1, generator=g).double()
    hues = (hues / n_objects).tolist()
    images, labels, all_angles = [], [], []
    for k in range(n_objects):
        family = FAMILIES[k % len(FAMILIES)]
        verts, faces, colors = make_object(family, seed=int(seed) * 1000 + k, hue=hues[k])
        if angles == "grid":
            a = torch.arange(n_poses, dtype=torch.float32) * (2 * math.pi / n_poses)
        else:
            a = torch.sort(torch.rand(n_poses, generator=g) * (2 * math.pi)).values
        images.append(render_object(verts, faces, colors, a, image_size=image_size, elevation=elevation,
                                    background=background))  # fmt: skip
        labels.append(torch.full((n_poses,), k, dtype=torch.long))
        all_angles.append(a)
    return torch.cat(images), torch.cat(labels), torch.cat(all_angles)
