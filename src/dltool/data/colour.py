"""Colour augmentation of whole batches with a factor per image (torchvision's semantics).

Float functions take images (B, C, H, W) as floats in [0, 255] and per-image factors (B,)
on the same device, and return the same range (clamped after each op, as torchvision
does on uint8 images). One-channel images are grey already: saturation and hue leave them
as they are. The uint8 functions (``posterize``, ``solarize``, ``autocontrast``,
``equalize``) are those of the auto-augment policies and work on whole pixel values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ITU-R 601-2 luma, as PIL and torchvision's rgb_to_grayscale.
LUMA = (0.299, 0.587, 0.114)


def _per_image(factors: torch.Tensor) -> torch.Tensor:
    return factors.view(-1, 1, 1, 1)


def blend(images: torch.Tensor, other: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """``factor · image + (1 − factor) · other``, clamped to [0, 255]."""
    f = _per_image(factors)
    return (images * f + other * (1 - f)).clamp_(0, 255)


def grey(images: torch.Tensor) -> torch.Tensor:
    """The luma of RGB images (B, 1, H, W); one-channel images as they are."""
    if images.shape[1] == 1:
        return images
    r, g, b = images.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return (images * _per_image(factors)).clamp_(0, 255)


def contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean grey level."""
    return blend(images, grey(images).mean((1, 2, 3), keepdim=True), factors)


def saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend with the grey image."""
    return images if images.shape[1] == 1 else blend(images, grey(images), factors)


def sharpness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend with a 3×3 smoothed image whose border pixels are the original's (PIL's)."""
    channels = images.shape[1]
    kernel = torch.ones(3, 3, device=images.device, dtype=images.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(channels, 1, 3, 3)
    smooth = images.clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(images, kernel, groups=channels).round_()
    return blend(images, smooth, factors)


def hue(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Hue rotated by ``shifts`` (B,) shares of the colour circle, through HSV."""
    if images.shape[1] == 1:
        return images
    h, s, v = _rgb_to_hsv(images / 255).unbind(1)
    h = h + _per_image(shifts)[:, 0]
    h = h - h.floor()
    return (_hsv_to_rgb(h, s, v) * 255).clamp_(0, 255)


def _rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb.unbind(1)
    top, bottom = rgb.amax(1), rgb.amin(1)  # (max(1) also finds indices: ~25x slower on CPU)
    chroma = top - bottom
    grey = chroma == 0
    safe = chroma.masked_fill(grey, 1.0)
    saturation = chroma / top.masked_fill(top == 0, 1.0)
    rc, gc, bc = (top - r) / safe, (top - g) / safe, (top - b) / safe
    h = torch.where(top == r, bc - gc, torch.where(top == g, 2.0 + rc - bc, 4.0 + gc - rc)) / 6.0
    h = (h - h.floor()).masked_fill_(grey, 0.0)  # the fractional part: h mod 1
    return torch.stack([h, saturation, top], 1)


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # Channel c is v − v·s·clamp(min(k, 4 − k), 0, 1) with k = (n_c + 6h) mod 6, n = 5, 3, 1
    # for red, green, blue: the piecewise-linear HSV hexcone in a few whole-batch ops.
    n = (5 - 2 * torch.arange(3, device=h.device, dtype=h.dtype)).view(1, 3, 1, 1)
    k = (n + 6 * h.unsqueeze(1)) % 6
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * ramp


def greyscale(images: torch.Tensor) -> torch.Tensor:
    """Every channel set to the luma."""
    return grey(images).expand_as(images).contiguous()


def gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor, largest: float) -> torch.Tensor:
    """Separable Gaussian blur with a sigma (px) per image, reflecting at the borders; the
    kernel spans ±3 ``largest`` sigmas (less on images too small for it), whatever the
    batch drew, so an image is blurred the same in any batch."""
    n, channels, height, width = images.shape
    radius = max(1, min(math.ceil(3 * largest), height - 1, width - 1))
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernels = torch.exp(-(x[None, :] ** 2) / (2 * sigmas[:, None] ** 2))
    kernels = (kernels / kernels.sum(1, keepdim=True)).repeat_interleave(channels, 0)  # (B·C, k)
    flat = F.pad(images.reshape(1, n * channels, height, width), (radius,) * 4, mode="reflect")
    flat = F.conv2d(flat, kernels[:, None, None, :], groups=n * channels)
    flat = F.conv2d(flat, kernels[:, None, :, None], groups=n * channels)
    return flat.view(n, channels, height, width)


def posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """uint8 images keeping the ``bits`` (B,) high bits of each value."""
    mask = (256 - 2 ** (8 - bits.long())).to(torch.uint8)
    return images & _per_image(mask)


def solarize(images: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """uint8 images with every value at or above the image's threshold inverted."""
    return torch.where(images >= _per_image(thresholds), 255 - images, images)


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """uint8 images with each channel stretched to span 0..255 (flat channels kept)."""
    flat = images.flatten(2).float()
    low, high = flat.amin(2, keepdim=True), flat.amax(2, keepdim=True)
    scale = torch.where(high > low, 255 / (high - low).clamp(min=1), torch.ones_like(high))
    low = torch.where(high > low, low, torch.zeros_like(low))
    return ((flat - low) * scale).clamp_(0, 255).to(torch.uint8).view_as(images)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images with each channel's histogram equalised, as PIL's ``ImageOps.equalize``."""
    flat = images.flatten(2).long()
    hist = torch.zeros(*flat.shape[:2], 256, dtype=torch.long, device=images.device)
    hist.scatter_add_(2, flat, torch.ones_like(flat))
    # PIL: the step leaves out the count of the last (brightest) value present.
    last = hist.gather(2, flat.amax(2, keepdim=True))
    step = (flat.shape[2] - last) // 255
    safe = step.clamp(min=1)
    lut = (torch.cumsum(hist, 2) - hist + safe // 2) // safe  # counts below each value
    equalised = lut.clamp_(0, 255).gather(2, flat).to(torch.uint8)
    return torch.where(step > 0, equalised, images.flatten(2)).view_as(images)
