"""A very small ResNet for tests, the demo and CPU benchmarks.

Same module names as torchvision's ResNet (``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``)
so dual-BN conversion, Grad-CAM layer lookup and checkpoint tooling treat it like its big
siblings; widths 8/16/32/64, one BasicBlock per stage, a 3×3 stem without max-pool so that
32–64 px inputs keep enough resolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

__all__ = ["TinyResNet"]


class TinyResNet(nn.Module):
    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        widths: tuple[int, int, int, int] = (8, 16, 32, 64),
        blocks: tuple[int, int, int, int] = (1, 1, 1, 1),
    ) -> None:
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(widths[0], blocks[0], stride=1)
        self.layer2 = self._make_layer(widths[1], blocks[1], stride=2)
        self.layer3 = self._make_layer(widths[2], blocks[2], stride=2)
        self.layer4 = self._make_layer(widths[3], blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, n: int, stride: int) -> nn.Sequential:
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        layers: list[nn.Module] = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
