"""Pixel geometry shared by sources, engine front-end and sinks.

Policy (documented in the README): a picture is fitted to a target size by cropping its centre to
the target's aspect ratio and then resizing (area filter when shrinking, bilinear when growing).
The same rule brings camera frames to the profile's resolution and styled frames to the output size,
so nothing is stretched and nothing is letterboxed.
"""

from __future__ import annotations

import cv2
import numpy as np


def centre_crop_to_aspect(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The largest centred region of ``pixels`` with the aspect ratio width:height."""
    h, w = pixels.shape[:2]
    # Compare w/h with width/height without floating point: w*height vs h*width.
    if w * height > h * width:  # too wide: trim left/right
        new_w = max(1, round(h * width / height))
        x0 = (w - new_w) // 2
        return pixels[:, x0 : x0 + new_w]
    if w * height < h * width:  # too tall: trim top/bottom
        new_h = max(1, round(w * height / width))
        y0 = (h - new_h) // 2
        return pixels[y0 : y0 + new_h, :]
    return pixels


def fit(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to width:height and resize to exactly (height, width). Returns a contiguous array."""
    if pixels.shape[0] == height and pixels.shape[1] == width:
        return np.ascontiguousarray(pixels)
    cropped = centre_crop_to_aspect(pixels, width, height)
    shrinking = cropped.shape[0] * cropped.shape[1] > width * height
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(cropped, (width, height), interpolation=interp))


def size_for_aspect(width: int, height: int, aspect: float, multiple: int = 8) -> tuple[int, int]:
    """About ``width * height`` pixels at ``aspect`` (w/h), each side a multiple of ``multiple``: a
    profile's resolution is a pixel budget, the picture keeps the camera's shape (so a 16:9 camera is
    styled whole instead of cropped to a square). Sizes already at that aspect come back unchanged."""
    if width * height <= 0 or aspect <= 0 or abs(aspect - width / height) <= 0.02 * (width / height):
        return width, height
    area = width * height
    w = max(multiple, round((area * aspect) ** 0.5 / multiple) * multiple)
    h = max(multiple, round((area / aspect) ** 0.5 / multiple) * multiple)
    return w, h
