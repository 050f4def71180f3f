"""Training-time augmentation in NumPy/OpenCV: random resized crop, horizontal flip, colour
jitter (brightness, contrast, saturation), the usual recipe for fine-tuning an ImageNet
backbone on a small collection."""

from __future__ import annotations

import cv2
import numpy as np


def random_resized_crop(img: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
                        scale: tuple[float, float] = (0.35, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
    """A crop of random area (``scale`` of the image) and aspect (``ratio``), resized to
    ``size`` = (W, H); the whole image when no crop fits in ten tries (torchvision's rule)."""
    h, w = img.shape[:2]
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw = int(round(np.sqrt(target * aspect)))
        ch = int(round(np.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x = int(rng.integers(0, w - cw + 1))
            y = int(rng.integers(0, h - ch + 1))
            img = img[y:y + ch, x:x + cw]
            break
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)


def colour_jitter(img: np.ndarray, rng: np.random.Generator, strength: float = 0.3
                  ) -> np.ndarray:
    """Brightness, contrast and saturation each scaled by a factor in 1 +- ``strength``."""
    x = img.astype(np.float32)
    x *= rng.uniform(1 - strength, 1 + strength)  # brightness
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - strength, 1 + strength) + mean  # contrast
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * rng.uniform(1 - strength, 1 + strength) + grey  # saturation
    return np.clip(x, 0, 255).astype(np.uint8)


def augment(img: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One augmented view of a decoded RGB image, at the model's input ``size``."""
    out = random_resized_crop(img, size, rng)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(colour_jitter(out, rng))
