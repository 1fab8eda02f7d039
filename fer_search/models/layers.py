"""Layers shared by several families."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class InputAdapter(nn.Module):
    """Runs `net`, built for another input size or channel count, on (B, in_chans, 48, 48) batches.

    The wrapped network keeps its own parameter names under `net.`, so its published weights
    (timm's, a raw timm state_dict file) load into `net` unchanged.
    """

    def __init__(self, net: nn.Module, input_size: int, repeat_to_chans: int | None = None,
                 channel_stats: tuple[Sequence[float], Sequence[float]] | None = None):
        super().__init__()
        self.net = net
        self.input_size = input_size
        # Grayscale replicated to 3 channels lets RGB-pretrained weights load without adaptation.
        self.repeat_to_chans = repeat_to_chans
        # (mean, std) per channel, applied after the replication: the series' ResNets normalised their three
        # equal channels with ImageNet's statistics, which differ per channel (input: 0..1 pixels).
        self.channel_stats = channel_stats
        if channel_stats is not None:
            self.register_buffer("channel_mean", torch.tensor(channel_stats[0]).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("channel_std", torch.tensor(channel_stats[1]).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        if self.repeat_to_chans is not None and x.shape[1] != self.repeat_to_chans:
            x = x.expand(-1, self.repeat_to_chans, -1, -1)
        if self.channel_stats is not None:
            x = (x - self.channel_mean) / self.channel_std
        return self.net(x)


def conv_bn_relu(in_channels: int, out_channels: int, bias: bool = False) -> list[nn.Module]:
    """`bias`: BN's shift makes a conv bias redundant; the series' notebooks kept it (it is in their
    parameter counts), so their layouts ask for it."""
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True)]


def conv_stages(in_chans: int, widths: Sequence[int], convs: Sequence[int], *, bias: bool = False,
                dropout_rates: Sequence[float | None] | None = None) -> tuple[nn.Sequential, int]:
    """The plain CNNs' feature extractor (deeper_cnn's blocks, vgg's stages): per entry of `widths`, convs[i] x
    [Conv3x3 BN ReLU], MaxPool2, then Dropout2d(dropout_rates[i]) where that rate is not None. Returns the
    layers and the channels they end with. `bias` as in conv_bn_relu."""
    layers: list[nn.Module] = []
    channels = in_chans
    for stage, (width, count) in enumerate(zip(widths, convs)):
        for _ in range(count):
            layers += conv_bn_relu(channels, width, bias=bias)
            channels = width
        layers.append(nn.MaxPool2d(2))
        if dropout_rates is not None and dropout_rates[stage] is not None:
            layers.append(nn.Dropout2d(dropout_rates[stage]))
    return nn.Sequential(*layers), channels


def pooled_head(channels: int, fc_width: int | Sequence[int], dropout: float, num_classes: int,
                bias: bool = False) -> nn.Sequential:
    """Global average pooling -> [Linear BN ReLU Dropout] per hidden width -> Linear: the documented CNNs'
    classifier. `fc_width` is one hidden width, or several for a deeper head (deeper_cnn's 512 -> 256);
    `bias` as in conv_bn_relu."""
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    for width in [fc_width] if isinstance(fc_width, int) else fc_width:
        layers += [nn.Linear(channels, width, bias=bias), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
                   nn.Dropout(dropout)]
        channels = width
    layers.append(nn.Linear(channels, num_classes))
    return nn.Sequential(*layers)
