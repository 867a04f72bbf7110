"""MNIST as PNG folders, as DIGITS' downloader wrote them (`python -m digits.download_data mnist`):
`<out>/<split>/<label>/<index:05d>.png` (inverted: black digit on white, `L` PNG), with
`<out>/<split>/labels.txt` (0-9) and `<out>/<split>/<split>.txt` ("<full path> <label>" lines).

The main job classifies the 10,000 test images from these files, as DIGITS' "Classify Many"
took them from test.txt. Written into a temporary folder and renamed when complete.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from prototxt import atomic_folder

from .errors import BuilderError
from .mnist import Mnist

SPLITS = ("train", "test")


def write_mnist_images(mnist: Mnist, out: str | Path, split: str = "test",
                       force: bool = False) -> Path:
    """Write one split's PNGs and lists under `out/split`; returns the list file's path."""
    if split not in SPLITS:
        raise BuilderError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    images = mnist.test_images if split == "test" else mnist.train_images
    labels = mnist.test_labels if split == "test" else mnist.train_labels
    final = Path(out).absolute() / split
    if final.exists():
        if not force:
            raise BuilderError("the folder exists; pass --force to replace it", final)
    with atomic_folder(final) as tmp:
        lines = []
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = tmp / str(int(label))
            folder.mkdir(exist_ok=True)
            name = f"{index:05d}.png"
            Image.fromarray(image, "L").save(folder / name)
            lines.append(f"{final / str(int(label)) / name} {int(label)}\n")
        (tmp / "labels.txt").write_text("".join(f"{d}\n" for d in range(10)))
        (tmp / f"{split}.txt").write_text("".join(lines))
    return final / f"{split}.txt"
