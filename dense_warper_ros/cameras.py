"""One camera convention for the whole package, converted into exactly once at each boundary.

Convention (world -> camera -> pixels, OpenCV / ROS optical frame: x right, y down, z forward):
    X_cam = R @ X_world + t          R = R_cam_from_world, t = t_cam_from_world
    x_img = K @ X_cam, then lens distortion of the given OpenCV model.
Human3.6M files store X_cam = R (X_world - T) with T the camera centre: use `Camera.from_centre`.
ROS gives K, D and the optical frame in CameraInfo and the pose of the optical frame in the world
from TF (world <- optical): use `Camera.from_world_pose`.

The fusion maths (epipolar exchange, triangulation) is pinhole: distortion is removed from 2D points
with OpenCV at the boundary (`Camera.undistort_points`), as the method's released code ignores it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

DISTORTION_MODELS = ("none", "plumb_bob", "rational_polynomial", "equidistant")
# coefficients each model takes (0: no distortion); "none" ignores whatever it is given
DISTORTION_SIZES = {"none": tuple(range(15)), "plumb_bob": (0, 4, 5), "rational_polynomial": (0, 8),
                    "equidistant": (0, 4)}


def _f64(a, shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values: {arr}")
    return arr


@dataclass(frozen=True, eq=False)
class Camera:
    """A calibrated camera. Arrays are float64 numpy; use `projection_matrices` for torch batches."""

    K: np.ndarray                      # (3, 3) intrinsics
    R: np.ndarray                      # (3, 3) rotation, camera <- world
    t: np.ndarray                      # (3,) translation, camera <- world (metres)
    width: int
    height: int
    dist: np.ndarray = field(default_factory=lambda: np.zeros(0))  # OpenCV coefficients
    dist_model: str = "none"           # one of DISTORTION_MODELS
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", _f64(self.K, (3, 3), "K"))
        object.__setattr__(self, "R", _f64(self.R, (3, 3), "R"))
        object.__setattr__(self, "t", _f64(np.ravel(self.t), (3,), "t"))
        object.__setattr__(self, "dist", np.asarray(self.dist, dtype=np.float64).ravel())
        if self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise ValueError(f"camera {self.name!r}: focal lengths must be > 0, got K={self.K.tolist()}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera {self.name!r}: image size must be > 0, got {self.width}x{self.height}")
        if self.dist_model not in DISTORTION_MODELS:
            raise ValueError(f"camera {self.name!r}: unknown distortion model {self.dist_model!r}, "
                             f"expected one of {DISTORTION_MODELS}")
        if self.dist.size not in DISTORTION_SIZES[self.dist_model] or not np.all(np.isfinite(self.dist)):
            raise ValueError(f"camera {self.name!r}: {self.dist_model} distortion takes "
                             f"{DISTORTION_SIZES[self.dist_model]} finite coefficients, got {self.dist.tolist()}")
        if abs(np.linalg.det(self.R) - 1.0) > 1e-6:
            raise ValueError(f"camera {self.name!r}: R is not a rotation (det={np.linalg.det(self.R):.6f})")

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_centre(cls, *, K, R, centre, width: int, height: int, **kw) -> "Camera":
        """Human3.6M / Qualisys style: X_cam = R (X_world - centre)."""
        R = np.asarray(R, dtype=np.float64)
        return cls(K=K, R=R, t=-R @ np.asarray(centre, dtype=np.float64).ravel(),
                   width=width, height=height, **kw)

    @classmethod
    def from_world_pose(cls, *, K, R_world_cam, p_world_cam, width: int, height: int, **kw) -> "Camera":
        """ROS TF style: the optical frame's pose in the world (world <- camera)."""
        R_wc = np.asarray(R_world_cam, dtype=np.float64)
        return cls.from_centre(K=K, R=R_wc.T, centre=p_world_cam, width=width, height=height, **kw)

    # --- derived quantities -------------------------------------------------------------------
    @property
    def P(self) -> np.ndarray:
        """(3, 4) pinhole projection matrix K [R | t]."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    @property
    def centre(self) -> np.ndarray:
        """(3,) optical centre in the world."""
        return -self.R.T @ self.t

    @property
    def has_distortion(self) -> bool:
        return self.dist_model != "none" and bool(np.any(self.dist != 0))

    def with_extrinsics(self, R, t) -> "Camera":
        return replace(self, R=R, t=t)

    # --- projection ---------------------------------------------------------------------------
    def to_camera(self, X: np.ndarray) -> np.ndarray:
        """(..., 3) world -> (..., 3) camera coordinates."""
        return np.asarray(X, dtype=np.float64) @ self.R.T + self.t

    def project(self, X: np.ndarray, *, distort: bool = True) -> np.ndarray:
        """(..., 3) world points -> (..., 2) pixels (with the lens model unless `distort=False`)."""
        X = np.asarray(X, dtype=np.float64)
        shape = X.shape[:-1]
        Xc = self.to_camera(X.reshape(-1, 3))
        if not (distort and self.has_distortion):
            uv = Xc[:, :2] / Xc[:, 2:3] * np.diag(self.K)[:2] + self.K[:2, 2]
            uv[:, 0] += self.K[0, 1] * Xc[:, 1] / Xc[:, 2]
            return uv.reshape(*shape, 2)
        zero = np.zeros(3)
        if self.dist_model == "equidistant":
            pts = cv2.fisheye.projectPoints(Xc[None], zero, zero, self.K, self.dist[:4])[0]
        else:
            pts = cv2.projectPoints(Xc, zero, zero, self.K, self.dist)[0]
        return pts.reshape(*shape, 2)

    def undistort_points(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) observed pixels -> (..., 2) pixels of the ideal pinhole camera with the same K."""
        uv = np.asarray(uv, dtype=np.float64)
        if not self.has_distortion:
            return uv.copy()
        shape = uv.shape
        pts = uv.reshape(-1, 1, 2)
        if self.dist_model == "equidistant":
            out = cv2.fisheye.undistortPoints(pts, self.K, self.dist[:4], P=self.K)
        else:
            out = cv2.undistortPoints(pts, self.K, self.dist, P=self.K)
        return out.reshape(shape)


# --- batched helpers (torch) -------------------------------------------------------------------
def projection_matrices(cameras: list[Camera], *, dtype=torch.float32, device=None) -> torch.Tensor:
    """(V, 3, 4) pinhole projection matrices of a list of cameras."""
    return torch.as_tensor(np.stack([c.P for c in cameras]), dtype=dtype, device=device)


def project_points(P: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Pinhole projection, batched and differentiable.

    P: (..., 3, 4), X: (..., N, 3) -> (..., N, 2) pixels. Leading dims broadcast.
    """
    Xh = torch.cat([X, torch.ones_like(X[..., :1])], dim=-1)   # (..., N, 4)
    x = Xh @ P.transpose(-1, -2)                                # (..., N, 3)
    return x[..., :2] / x[..., 2:3]


def skew(v: np.ndarray) -> np.ndarray:
    """(3,) -> (3, 3) cross-product matrix [v]_x."""
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], dtype=np.float64)


def fundamental_matrix(a: Camera, b: Camera) -> np.ndarray:
    """F with x_b^T F x_a = 0 for pinhole pixels of the same world point (Hartley & Zisserman 9.2.2).

    F = K_b^-T [t_rel]_x R_rel K_a^-1, with X_b = R_rel X_a + t_rel.
    """
    R_rel = b.R @ a.R.T
    t_rel = b.t - R_rel @ a.t
    E = skew(t_rel) @ R_rel
    F = np.linalg.inv(b.K).T @ E @ np.linalg.inv(a.K)
    return F / np.linalg.norm(F)


# --- crops as affine maps ----------------------------------------------------------------------
def crop_affine(centre_xy, box_size: float, out_size: int | tuple[int, int]) -> np.ndarray:
    """(2, 3) affine, image pixels -> crop/heatmap pixels, for a square box of side `box_size` px
    centred at `centre_xy`, resampled to `out_size` (a pixel centre convention: pixel i covers
    [i - 0.5, i + 0.5], so the box edges map to -0.5 and out - 0.5).
    """
    ow, oh = (out_size, out_size) if isinstance(out_size, int) else out_size
    sx, sy = ow / box_size, oh / box_size
    cx, cy = float(centre_xy[0]), float(centre_xy[1])
    return np.array([[sx, 0.0, (ow - 1) / 2 - sx * cx],
                     [0.0, sy, (oh - 1) / 2 - sy * cy]], dtype=np.float64)


def affine_to_3x3(A: np.ndarray) -> np.ndarray:
    """(..., 2, 3) -> (..., 3, 3) homogeneous form."""
    A = np.asarray(A, dtype=np.float64)
    bottom = np.broadcast_to(np.array([0.0, 0.0, 1.0]), A.shape[:-2] + (1, 3))
    return np.concatenate([A, bottom], axis=-2)


def invert_affine(A: np.ndarray) -> np.ndarray:
    """(2, 3) affine -> its inverse (2, 3)."""
    return np.linalg.inv(affine_to_3x3(A))[:2]


def apply_affine(A: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (..., 2) points."""
    A = np.asarray(A, dtype=np.float64)
    return np.asarray(uv, dtype=np.float64) @ A[:, :2].T + A[:, 2]


def root_crop_affine(camera: Camera, root_world, *, box_mm: float = 2000.0,
                     out_size: int = 96) -> np.ndarray:
    """The method's crop: a `box_mm` x `box_mm` box (world size, default 2 m) around the root,
    projected into the image at the root's depth, as an image -> heatmap affine.
    """
    Xc = camera.to_camera(np.asarray(root_world, dtype=np.float64).reshape(1, 3))[0]
    if Xc[2] <= 0:
        raise ValueError(f"camera {camera.name!r}: root is behind the camera (z={Xc[2]:.3f} m)")
    centre = camera.project(np.asarray(root_world).reshape(1, 3), distort=False)[0]
    side_px = camera.K[0, 0] * (box_mm / 1000.0) / Xc[2]
    return crop_affine(centre, side_px, out_size)


# --- batched torch geometry (added for the fusion; same convention as above) -------------------
def affines_to_3x3(A: torch.Tensor) -> torch.Tensor:
    """(..., 2, 3) affines -> (..., 3, 3) homogeneous form (torch)."""
    bottom = torch.zeros(A.shape[:-2] + (1, 3), dtype=A.dtype, device=A.device)
    bottom[..., 0, 2] = 1.0
    return torch.cat([A, bottom], dim=-2)


def invert_affines(A: torch.Tensor) -> torch.Tensor:
    """(..., 2, 3) -> (..., 2, 3) inverse affines, closed form (no batched LU for tiny matrices)."""
    L = A[..., :2, :2]                                           # (..., 2, 2)
    det = L[..., 0, 0] * L[..., 1, 1] - L[..., 0, 1] * L[..., 1, 0]
    inv = torch.stack([torch.stack([L[..., 1, 1], -L[..., 0, 1]], -1),
                       torch.stack([-L[..., 1, 0], L[..., 0, 0]], -1)], -2) / det[..., None, None]
    shift = -(inv @ A[..., :2, 2:3])                             # (..., 2, 1)
    return torch.cat([inv, shift], dim=-1)


def apply_affines(A: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Apply (..., 2, 3) affines to (..., N, 2) points; leading dims broadcast."""
    return uv @ A[..., :2, :2].transpose(-1, -2) + A[..., None, :2, 2]


def affine_scales(A: torch.Tensor) -> torch.Tensor:
    """(..., 2, 3) -> (...,) isotropic scale sqrt|det| (heatmap px per image px)."""
    L = A[..., :2, :2]
    return (L[..., 0, 0] * L[..., 1, 1] - L[..., 0, 1] * L[..., 1, 0]).abs().sqrt()


def camera_centres(P: torch.Tensor) -> torch.Tensor:
    """(..., 3, 4) finite projection matrices -> (..., 3) optical centres C = -M^-1 p4 (H&Z 6.2.4)."""
    return -torch.linalg.solve(P[..., :3], P[..., 3:])[..., 0]


def backproject(P: torch.Tensor, uv: torch.Tensor, depth: float | torch.Tensor) -> torch.Tensor:
    """Pixels back-projected to world points at a given depth along the optical axis.

    P: (..., 3, 4), uv: (..., N, 2) pinhole image px, depth: metres (scalar or broadcastable to
    (..., N)) -> (..., N, 3). Works for any scaling or sign of P: the depth of X = C + s M^-1 x is
    sign(det M) s / ||m3|| for the homogeneous pixel x with third coordinate 1 (H&Z 6.2.3).
    """
    M = P[..., :3]                                               # (..., 3, 3)
    C = camera_centres(P)                                        # (..., 3)
    x = torch.cat([uv, torch.ones_like(uv[..., :1])], dim=-1)    # (..., N, 3)
    d = torch.linalg.solve(M[..., None, :, :], x[..., None])[..., 0]   # (..., N, 3) rays
    sign = torch.sign(torch.linalg.det(M))[..., None, None]      # (..., 1, 1)
    s = torch.as_tensor(depth, dtype=P.dtype, device=P.device)
    s = s[..., None] if s.dim() > 0 else s
    s = s * M[..., None, 2, :].norm(dim=-1, keepdim=True) * sign  # (..., N|1, 1)
    return C[..., None, :] + s * d


def fundamental_matrices(P_a: torch.Tensor, P_b: torch.Tensor) -> torch.Tensor:
    """F (..., 3, 3) with x_b^T F x_a = 0 from projection matrices (..., 3, 4), batched torch.

    F = [e_b]_x P_b P_a^+ with e_b = P_b C_a (H&Z 9.2.2, result 9.9); normalised to unit Frobenius
    norm. Agrees with `fundamental_matrix` up to sign.
    """
    C = camera_centres(P_a)
    e = P_b @ torch.cat([C, torch.ones_like(C[..., :1])], dim=-1)[..., None]   # (..., 3, 1)
    e = e[..., 0]
    z = torch.zeros_like(e[..., 0])
    ex = torch.stack([torch.stack([z, -e[..., 2], e[..., 1]], -1),
                      torch.stack([e[..., 2], z, -e[..., 0]], -1),
                      torch.stack([-e[..., 1], e[..., 0], z], -1)], -2)
    F = ex @ P_b @ torch.linalg.pinv(P_a)
    return F / F.flatten(-2).norm(dim=-1)[..., None, None]


def undistort_points_torch(cameras: list[Camera | None], uv: torch.Tensor) -> torch.Tensor:
    """(..., V, N, 2) observed pixels of V cameras -> pinhole pixels, with OpenCV. A None camera (a
    missing view) and non-finite points pass through unchanged.

    Gradients pass straight through (the correction's Jacobian taken as the identity), so training on
    real cameras still reaches the warps: exact for the values, first-order right for the small
    distortion of calibrated rigs (pose2sim's moves points by hundredths of a pixel).

    The hook the model calls before DLT (`DenseWarper.pose_at(undistort=...)`); build it with
    `undistorter(cameras)`.
    """
    if uv.shape[-3] != len(cameras):
        raise ValueError(f"uv has {uv.shape[-3]} views (shape {tuple(uv.shape)}), "
                         f"but {len(cameras)} cameras were given")
    out = uv.detach().cpu().double().numpy().copy()
    for v, cam in enumerate(cameras):
        if cam is None or not cam.has_distortion:
            continue
        pts = out[..., v, :, :].reshape(-1, 2)
        ok = np.isfinite(pts).all(axis=1)
        if ok.any():
            pts[ok] = cam.undistort_points(pts[ok])
        out[..., v, :, :] = pts.reshape(out[..., v, :, :].shape)
    fixed = torch.as_tensor(out, dtype=uv.dtype, device=uv.device)
    return uv + (fixed - uv).detach().nan_to_num() if uv.requires_grad else fixed


def undistorter(cameras: list[Camera | None]):
    """A callable uv (..., V, N, 2) -> undistorted uv for a fixed rig, or None if no lens distorts."""
    if not any(c is not None and c.has_distortion for c in cameras):
        return None
    cams = list(cameras)
    return lambda uv: undistort_points_torch(cams, uv)


# --- synthetic cameras (tests, benchmark, simulation; rings of them: `data.rigs`) ----------------
def look_at_rotation(centre, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """R_cam_from_world of a camera at `centre` looking at `target`, image x to the right and
    y down (OpenCV optical frame), with the world `up` pointing up in the image."""
    centre, target, up = (np.asarray(v, dtype=np.float64) for v in (centre, target, up))
    z = target - centre
    if np.linalg.norm(z) < 1e-9:
        raise ValueError(f"camera centre {centre.tolist()} coincides with its look-at point")
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError(f"viewing direction {z.tolist()} is parallel to up {up.tolist()}: look-at is ill-defined")
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])               # rows: image x, image y (down), optical axis


def centred_intrinsics(focal_px: float, width: int, height: int) -> np.ndarray:
    """K (3, 3) with fx = fy = `focal_px` and the principal point at the image centre."""
    return np.array([[focal_px, 0.0, (width - 1) / 2], [0.0, focal_px, (height - 1) / 2], [0.0, 0.0, 1.0]])


def look_at_camera(*, position, target, focal_px: float, width: int, height: int,
                   up=(0.0, 0.0, 1.0), **kw) -> Camera:
    """A camera at `position` looking at `target` (world z up), principal point at the centre."""
    return Camera.from_centre(K=centred_intrinsics(focal_px, width, height), R=look_at_rotation(position, target, up),
                              centre=np.asarray(position, dtype=np.float64), width=width, height=height, **kw)
