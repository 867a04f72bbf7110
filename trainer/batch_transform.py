"""The float half of Caffe's DataTransformer, on a whole batch, on any torch device.

Workers cut each image's crop window in uint8 and flip it when drawn so
(`DataTransformer.crop_uint8`); what crosses to the device is that uint8 batch plus each image's
draw. Here, for image b of a B x C x h x w batch drawn at (h_off, w_off, mirror):

    out[b, c, i, j] = (x[b, c, i, j] - mean[c, h_off + i, w_off + s(j)]) * scale
                      s(j) = w - 1 - j when mirrored, else j
                      (mean_value: one per channel, or one for all; no mean: 0)

which is DataTransformer's formula read from the output side: the mean is taken at the window's
own pixels, flipped with them. Subtraction and multiplication are separate float32 operations,
as in the NumPy reference, so the result is the same bit for bit on a CPU or a GPU; the scale is
skipped when it is 1, as there. Four times fewer bytes cross the bus than with float batches, and
the GPU does the arithmetic (NVCaffe's `use_gpu_transform` idea).
"""
from __future__ import annotations

import numpy as np
import torch

from .transform import DataTransformer


class BatchTransform:
    """`transform(images_u8, h_off, w_off, mirror) -> float32` on `device`, for one Data layer."""

    def __init__(self, transformer: DataTransformer, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.scale = float(transformer.scale)
        self.mean = (None if transformer.mean is None else
                     torch.from_numpy(np.ascontiguousarray(transformer.mean)).to(self.device))
        values = transformer.mean_value
        self.mean_value = (None if transformer.mean is not None or not values.size else
                           torch.from_numpy(values.copy()).reshape(1, -1, 1, 1).to(self.device))

    def __call__(self, images: torch.Tensor, h_off: torch.Tensor, w_off: torch.Tensor,
                 mirror: torch.Tensor) -> torch.Tensor:
        """`images`: uint8 B x C x h x w (cropped, flipped) on the device; the draws: (B,)."""
        x = images.to(self.device, non_blocking=True).float()
        if self.mean is not None:
            x = x - self._mean_windows(x.shape, h_off, w_off, mirror)
        elif self.mean_value is not None:
            x = x - self.mean_value
        if self.scale != 1:
            x = x * self.scale
        return x

    def _mean_windows(self, shape: torch.Size, h_off: torch.Tensor, w_off: torch.Tensor,
                      mirror: torch.Tensor) -> torch.Tensor:
        """mean[c, h_off + i, w_off + s(j)] for every image: one gather, B x C x h x w."""
        _, _, h, w = shape
        dev = self.device
        h_off, w_off, mirror = (t.to(dev, non_blocking=True) for t in (h_off, w_off, mirror))
        i = torch.arange(h, device=dev)
        j = torch.arange(w, device=dev)
        rows = h_off[:, None] + i                                    # B x h
        cols = w_off[:, None] + torch.where(mirror[:, None], w - 1 - j, j)  # B x w
        windows = self.mean[:, rows[:, :, None], cols[:, None, :]]   # C x B x h x w
        return windows.permute(1, 0, 2, 3)
