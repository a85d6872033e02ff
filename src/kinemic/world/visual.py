"""A visual proxy of a clip: its joints as 2-D keypoints seen by a random pinhole camera.

A stand-in for what a video pose estimator would hand over: the 3-D joints (T, 22, 3) are
projected through a camera placed at a random azimuth, elevation and distance around the
subject, looking at the subject's mean pelvis position, with a random focal length; Gaussian
pixel noise is added. Image coordinates are pixels, x to the right and y down, origin at the
top-left corner of a ``width`` × ``height`` image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

IMAGE_WIDTH = 1920
IMAGE_HEIGHT = 1080


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking at ``target`` from spherical coordinates around it.

    Angles in degrees (azimuth about +Y, 0 = in front of a subject facing +Z; elevation above
    the horizontal), distance in metres, focal length and pixel noise in pixels.
    """

    azimuth: float
    elevation: float
    distance: float
    focal: float
    target: tuple[float, float, float]
    width: int = IMAGE_WIDTH
    height: int = IMAGE_HEIGHT
    pixel_noise: float = 0.0

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def position(self) -> np.ndarray:
        """Camera centre (3,) in world coordinates."""
        az, el = np.radians(self.azimuth), np.radians(self.elevation)
        direction = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
        return np.asarray(self.target) + self.distance * direction

    def rotation(self) -> np.ndarray:
        """World-to-camera rotation (3, 3): rows are the camera's right, down, forward axes."""
        forward = np.asarray(self.target) - self.position()
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        return np.stack([right, down, forward])


def random_camera(
    rng: np.random.Generator,
    target: np.ndarray,
    *,
    azimuth: tuple[float, float] = (-70.0, 70.0),
    elevation: tuple[float, float] = (0.0, 30.0),
    distance: tuple[float, float] = (3.0, 6.0),
    focal: tuple[float, float] = (700.0, 1400.0),
    pixel_noise: tuple[float, float] = (0.5, 3.0),
) -> Camera:
    """A camera drawn uniformly from the given ranges, looking at ``target`` (3,) metres."""
    return Camera(
        azimuth=float(rng.uniform(*azimuth)),
        elevation=float(rng.uniform(*elevation)),
        distance=float(rng.uniform(*distance)),
        focal=float(rng.uniform(*focal)),
        target=tuple(float(x) for x in target),
        pixel_noise=float(rng.uniform(*pixel_noise)),
    )


def project(joints: np.ndarray, camera: Camera) -> np.ndarray:
    """Pixel coordinates (..., 2) of world points (..., 3), without noise."""
    cam = (np.asarray(joints, dtype=np.float64) - camera.position()) @ camera.rotation().T
    depth = np.maximum(cam[..., 2:3], 1e-3)  # points behind the camera never happen here
    centre = np.array([camera.width / 2.0, camera.height / 2.0])
    return camera.focal * cam[..., :2] / depth + centre


def visual_proxy(joints: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Camera]:
    """Keypoints (T, 22, 2) float32 in pixels of joints (T, 22, 3), and the camera used.

    The camera looks at the mean pelvis position at chest height; each keypoint gets
    independent Gaussian noise of ``camera.pixel_noise`` pixels.
    """
    joints = np.asarray(joints, dtype=np.float64)
    target = joints[:, 0].mean(axis=0) + np.array([0.0, 0.3, 0.0])
    camera = random_camera(rng, target)
    keypoints = project(joints, camera)
    keypoints += rng.normal(scale=camera.pixel_noise, size=keypoints.shape)
    return keypoints.astype(np.float32), camera
