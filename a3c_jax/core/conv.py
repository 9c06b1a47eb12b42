"""The paper's convolutional torso, for Atari frames and scaled to MinAtar's.

``ConvTorso(layers)`` is two ReLU convolutions (``layers``: (features, kernel, stride) each),
then a dense 256 ReLU layer. ``ATARI_LAYERS`` is the paper's network (conv 16 8x8 stride 4,
conv 32 4x4 stride 2) for 84x84x4 frames, which it reads as uint8 and divides by 255;
``MINATAR_LAYERS`` (16 3x3 and 32 3x3, stride 1) is the same network scaled to 10x10xC frames.

The convolutions are written as patch extraction and one matrix product (``PatchConv``, the
same parameters and outputs as ``flax.linen.Conv`` with VALID padding): on XLA:CPU the
gradient of ``lax.conv`` inside a ``lax.scan`` or ``while`` loop runs about 7x slower than the
same gradient outside one (measured here: 32 ms against 4.4 ms per step of the MinAtar torso at
a batch of 80), and A2C scans its updates; the patch form costs the same in and out of a loop.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Layers = tuple[tuple[int, int, int], ...]
ATARI_LAYERS: Layers = ((16, 8, 4), (32, 4, 2))
MINATAR_LAYERS: Layers = ((16, 3, 1), (32, 3, 1))


def dense(features: int, scale: float = np.sqrt(2.0)) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(scale),
                    bias_init=nn.initializers.zeros)


class PatchConv(nn.Module):
    """A VALID convolution as patches @ kernel: ``[..., H, W, C] -> [..., (H-kh)//s+1,
    (W-kw)//s+1, F]`` for stride s. Parameters ``kernel`` [kh, kw, C, F] and ``bias`` [F] are
    laid out and initialised as ``flax.linen.Conv``'s, so the two are interchangeable on the
    same variables."""

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    kernel_init: Any = nn.initializers.lecun_normal()
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        s, c = self.stride, x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (kh, kw, c, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        h, w = (x.shape[-3] - kh) // s + 1, (x.shape[-2] - kw) // s + 1
        if x.shape[-3] < kh or x.shape[-2] < kw:
            raise ValueError(f"PatchConv: a {kh}x{kw} kernel does not fit a "
                             f"{x.shape[-3]}x{x.shape[-2]} input")
        # Channel order (i, j, c) matches kernel.reshape(kh * kw * c, F).
        patches = jnp.concatenate([x[..., i:i + s * (h - 1) + 1:s, j:j + s * (w - 1) + 1:s, :]
                                   for i in range(kh) for j in range(kw)], axis=-1)
        return patches @ kernel.reshape(kh * kw * c, self.features) + bias


class ConvTorso(nn.Module):
    """Two ReLU convolutions and a dense 256 ReLU layer. Input [..., H, W, C], multiplied by
    ``scale`` first (1/255 for uint8 frames). ``lax_conv`` uses ``flax.linen.Conv`` layers
    instead of ``PatchConv`` (the same variables; see benchmarks/conv_in_loop.py)."""

    lax_conv: bool = False
    layers: Layers = MINATAR_LAYERS
    scale: float = 1.0

    def _conv(self, features: int, kernel: int, stride: int, init, name: str) -> nn.Module:
        if self.lax_conv:
            return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                           padding="VALID", kernel_init=init, name=name)
        return PatchConv(features, (kernel, kernel), kernel_init=init, stride=stride,
                         name=name)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        lead = x.shape[:-3]
        x = x.reshape((-1,) + x.shape[-3:]).astype(jnp.float32)
        if self.scale != 1.0:
            x = x * self.scale
        init = nn.initializers.orthogonal(np.sqrt(2.0))
        # Named as nn.Conv would be, so checkpoints of either form load into the other.
        for i, (features, kernel, stride) in enumerate(self.layers):
            x = nn.relu(self._conv(features, kernel, stride, init, f"Conv_{i}")(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(dense(256)(x))
        return x.reshape(lead + (256,))
