"""Planar images projected onto the sphere, as the Spherical CNNs paper made Spherical MNIST.

Implements the data generator of Cohen et al., "Spherical CNNs" (ICLR 2018, arXiv:1801.10130),
upstream ``jonkhler/s2cnn`` ``examples/mnist/gendata.py`` (commit 70eec9f). NAS-Bench-360's
spherical task is CIFAR-100 made the same way at bandwidth b = 30.

The recipe: the unit sphere sits centred at the origin, the image lies on the plane z = -1
(tangent at the south pole) as the square [-w, w]^2 with w = 1.5, and the projection centre is
N = (0, 0, 1 + eps) just above the north pole. Each point p of the Driscoll-Healy grid is
rotated (one rotation per sample), the rotated point is mapped along the ray from N through it
to the plane, and the image is sampled bilinearly there. Points that land outside the image,
or lie on the far (northern) hemisphere, get 0.

Symbol map: ``b`` is the bandwidth, ``theta`` the colatitude θ (0 at the north pole), ``phi``
the azimuth φ, ``eps`` is s2cnn's ``NORTHPOLE_EPSILON``, ``w`` the half-width of the image.

Deviations from upstream:
    - Bilinear sampling is the textbook one (pixel centres at i + 0.5, weights summing to 1,
      border pixels replicated over the outer half pixel). Upstream interpolates between
      pixels ix - 1 and ix + 1, i.e. over a span of two pixels.
    - The result is not min-max rescaled to uint8 per sample; images in [0, 1] stay in [0, 1]
      (bilinear weights are a convex combination) and are returned as float32.
    - One independent rotation per sample; upstream shares one rotation per chunk of 500.
    - Rotations come from ``scipy.spatial.transform.Rotation.random`` (Haar-uniform on SO(3))
      with a seeded generator, not from the Arvo reflection recipe with global ``np.random``.

Orientation convention (see ``project_images``): plane x runs along image rows (axis -2,
index i), plane y along image columns (axis -1, index j), as upstream's ``signal[:, x, y]``.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

NORTHPOLE_EPSILON = 1e-3  # the projection centre sits this far above the north pole
IMAGE_HALF_WIDTH = 1.5  # the image covers [-1.5, 1.5]^2 on the plane z = -1 (s2cnn's xmin)
PLANE_Z = -1.0  # the image plane, tangent to the unit sphere at the south pole
# Points with p_z <= this count as near. cos(π/2) is 6e-17 in floating point, so without it
# the equator row of the unrotated grid would be far while a rotated copy of it is near;
# upstream (z + 1 <= 1 after shifting the sphere up) also rounds the equator to near.
EQUATOR_TOLERANCE = 1e-12
_CHUNK = 256  # samples per vectorised block in project_images (bounds peak memory)


def driscoll_healy_grid(b: int) -> tuple[np.ndarray, np.ndarray]:
    """The Driscoll-Healy grid of bandwidth ``b``.

    θ_j = πj/(2b) and φ_k = πk/b for j, k = 0..2b-1 (θ includes the north pole, not the
    south pole).

    Args:
        b: Bandwidth, a positive integer.

    Returns:
        ``(theta, phi)``, each of shape (2b, 2b), ``indexing='ij'``: ``theta[j, k] = θ_j``
        and ``phi[j, k] = φ_k``.

    Raises:
        ValueError: if ``b`` is not a positive integer.

    Example:
        >>> theta, phi = driscoll_healy_grid(2)
        >>> theta.shape, float(theta[1, 0] * 4 / np.pi), float(phi[0, 1] * 2 / np.pi)
        ((4, 4), 1.0, 1.0)
    """
    if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
        raise ValueError(f"bandwidth b must be a positive integer, got {b!r}")
    j = np.arange(2 * b)
    theta_1d = np.pi * j / (2 * b)  # (2b,)
    phi_1d = np.pi * j / b  # (2b,)
    theta, phi = np.meshgrid(theta_1d, phi_1d, indexing="ij")  # each (2b, 2b)
    return theta, phi


def grid_points(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit vectors for colatitudes ``theta`` and azimuths ``phi``.

    Args:
        theta: Colatitudes, any shape S.
        phi: Azimuths, the same shape S.

    Returns:
        Array (3, *S): (sin θ cos φ, sin θ sin φ, cos θ).

    Example:
        >>> grid_points(np.array([np.pi]), np.array([0.0])).round(6).ravel().tolist()
        [0.0, 0.0, -1.0]
    """
    sin_theta = np.sin(theta)
    return np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), np.cos(theta)])


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rotation matrices drawn uniformly (Haar measure) from SO(3).

    Args:
        n: Number of rotations.
        rng: Seeded generator; the result is a function of its state.

    Returns:
        Array (n, 3, 3) of proper rotations (R Rᵀ = I, det R = +1).

    Example:
        >>> r = random_rotations(2, np.random.default_rng(0))
        >>> r.shape, bool(np.allclose(np.linalg.det(r), 1.0))
        ((2, 3, 3), True)
    """
    if n < 0:
        raise ValueError(f"number of rotations must be >= 0, got {n}")
    if n == 0:
        return np.zeros((0, 3, 3))
    # Positional generator: the keyword is `random_state` before scipy 1.15, `rng` after.
    return Rotation.random(n, rng).as_matrix()  # (n, 3, 3)


def project_to_plane(
    points: np.ndarray, eps: float = NORTHPOLE_EPSILON
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map points of the unit sphere to the plane z = -1 along rays from above the north pole.

    The projection centre is N = (0, 0, 1 + eps). The line N + s(p - N) meets z = -1 at
    q = t p_xy with t = (2 + eps) / (N_z - p_z), so q keeps the azimuth of p and the south
    pole maps to the origin. (s2cnn shifts the sphere up by 1; this is the same map.)

    Args:
        points: Array (3, *S) of unit vectors.
        eps: Height of the projection centre above the north pole.

    Returns:
        ``(qx, qy, near)``, each of shape S: plane coordinates and a boolean mask of the
        near (southern, p_z <= 0) hemisphere, the equator included up to
        ``EQUATOR_TOLERANCE``; far points are to get 0 in the image.

    Example:
        >>> qx, qy, near = project_to_plane(np.array([[0.0], [0.0], [-1.0]]))
        >>> float(qx[0]), float(qy[0]), bool(near[0])
        (0.0, 0.0, True)
    """
    px, py, pz = points[0], points[1], points[2]
    t = (1.0 - PLANE_Z + eps) / (1.0 + eps - pz)  # (2 + eps) / (N_z - p_z), shape S
    return t * px, t * py, pz <= EQUATOR_TOLERANCE


def project_images(
    images: np.ndarray,
    b: int,
    rotations: np.ndarray | None = None,
    half_width: float = IMAGE_HALF_WIDTH,
) -> np.ndarray:
    """Project planar images onto the sphere and sample them on a (rotated) Driscoll-Healy grid.

    Orientation: the image occupies the square [-w, w]^2 of the plane z = -1, centred on the
    south pole. Plane x runs along image rows (axis -2, index i) and plane y along columns
    (axis -1, index j): pixel (i, j) of an H x W image has its centre at
    x = -w + (i + 0.5) 2w/H, y = -w + (j + 0.5) 2w/W. Between pixel centres the image is
    interpolated bilinearly; within the outer half pixel the border pixel is replicated;
    outside the square the image is 0.

    Rotation: sample s takes value ``image_s(proj(R_s p))`` at grid point p, i.e. the grid is
    rotated by R_s before projection (the projected signal is rotated by R_sᵀ). With R_s a
    rotation about z by m·π/b, the output is the unrotated one shifted by m along φ:
    ``out[..., k] = unrotated[..., (k + m) % 2b]``.

    Args:
        images: Array (n, C, H, W), any real dtype; H, W >= 1.
        b: Bandwidth; the output grid is 2b x 2b.
        rotations: Array (n, 3, 3), one rotation per sample, or None for the identity
            (the "unrotated" variant).
        half_width: Half-width w of the image square on the plane.

    Returns:
        Float32 array (n, C, 2b, 2b): axis -2 is θ_j (north pole first), axis -1 is φ_k.

    Raises:
        ValueError: if ``images`` is not 4-D or ``rotations`` is not (n, 3, 3).

    Example:
        >>> out = project_images(np.ones((1, 1, 4, 4)), b=4)
        >>> out.shape, float(out[0, 0, -1, 0]), float(out[0, 0, 0, 0])
        ((1, 1, 8, 8), 1.0, 0.0)
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (n, C, H, W), got shape {images.shape}")
    n = images.shape[0]
    if rotations is None:
        rotations = np.broadcast_to(np.eye(3), (n, 3, 3))
    rotations = np.asarray(rotations, dtype=np.float64)
    if rotations.shape != (n, 3, 3):
        raise ValueError(f"rotations must have shape ({n}, 3, 3), got {rotations.shape}")
    theta, phi = driscoll_healy_grid(b)
    points = grid_points(theta, phi).reshape(3, -1)  # (3, 2b, 2b) -> (3, M), M = 4b^2
    out = np.empty((n, images.shape[1], 2 * b, 2 * b), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        block = images[start:stop].astype(np.float32, copy=False)  # (c, C, H, W)
        rotated = np.einsum("nij,jm->inm", rotations[start:stop], points)  # (3, c, M)
        values = _sample_on_plane(block, rotated, half_width)  # (c, C, M)
        out[start:stop] = values.reshape(stop - start, images.shape[1], 2 * b, 2 * b)
    return out


def _sample_on_plane(images: np.ndarray, points: np.ndarray, half_width: float) -> np.ndarray:
    """Bilinear samples of ``images`` (c, C, H, W) at the plane images of ``points`` (3, c, M).

    Returns:
        Float32 array (c, C, M); 0 where a point is on the far hemisphere or off the image.
    """
    c, channels, height, width = images.shape
    qx, qy, near = project_to_plane(points)  # each (c, M)
    inside = near & (np.abs(qx) <= half_width) & (np.abs(qy) <= half_width)  # (c, M)
    # Continuous pixel coordinates: pixel i has its centre at u = i (plane x maps to rows).
    u = np.clip((qx + half_width) / (2 * half_width) * height - 0.5, 0.0, height - 1)
    v = np.clip((qy + half_width) / (2 * half_width) * width - 0.5, 0.0, width - 1)
    i0 = np.floor(u).astype(np.intp)  # (c, M), in [0, H-1]
    j0 = np.floor(v).astype(np.intp)
    i1 = np.minimum(i0 + 1, height - 1)
    j1 = np.minimum(j0 + 1, width - 1)
    fu = (u - i0).astype(np.float32)[:, None, :]  # (c, 1, M) fractional row offset
    fv = (v - j0).astype(np.float32)[:, None, :]
    flat = images.reshape(c, channels, height * width)  # (c, C, H, W) -> (c, C, H*W)

    def gather(ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
        index = (ii * width + jj)[:, None, :]  # (c, 1, M) flat pixel index
        return np.take_along_axis(flat, np.broadcast_to(index, (c, channels, index.shape[-1])), 2)

    top = (1 - fv) * gather(i0, j0) + fv * gather(i0, j1)  # (c, C, M)
    bottom = (1 - fv) * gather(i1, j0) + fv * gather(i1, j1)
    values = (1 - fu) * top + fu * bottom
    return values * inside[:, None, :].astype(np.float32)
