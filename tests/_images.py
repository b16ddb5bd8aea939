"""Generated image folders for tests (no dataset needed)."""

from __future__ import annotations

from pathlib import Path


def make_image_folder(root: Path, classes: int = 4, per_class: int = 8, size: int = 20, seed: int = 0) -> Path:
    """Writes a tiny labelled ImageFolder of generated RGB images whose colour depends on the class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        base = np.zeros(3)
        base[c % 3] = 200.0
        for i in range(per_class):
            noise = rng.normal(0, 40, size=(size, size, 3))
            img = np.clip(base + noise + 20 * (c // 3), 0, 255).astype("uint8")
            Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root
