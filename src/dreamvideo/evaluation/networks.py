"""Architectures of the video networks the paper's metrics use, for wiring tests and export.

No weights ship with the project and none are downloaded. `eval videos` loads user-given
TorchScript files; these modules define what such a file must look like, and a randomly
initialised copy (exported with `torch.jit.script`) tests the whole FVD / IS path.

- `InceptionI3d` (Carreira & Zisserman 2017, Kinetics-400, 400 classes), wrapped by
  `FVDDetector` with the call convention of the TorchScript I3D commonly used for FVD:
  ``detector(videos, rescale=False, resize=False, return_features=True)`` where `videos` is
  (B, 3, T, 224, 224) float in [-1, 1] and the result is (B, 400) logits ("features").
- `C3D` (Tran et al. 2015) as trained on UCF101 for the video Inception Score: input
  (B, 3, 16, 112, 112) float RGB in [0, 1] (the module normalises internally), output
  (B, 101) logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Unit3D(nn.Sequential):
    """Conv3d (no bias) + BatchNorm + ReLU, 'same' padding for odd kernels."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1)):
        padding = tuple(k // 2 for k in kernel)
        super().__init__(
            nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01),
            nn.ReLU(inplace=True),
        )


class _Mixed(nn.Module):
    """An Inception block: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | maxpool -> 1x1, concatenated."""

    def __init__(self, cin: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        a, b_reduce, b, c_reduce, c, d = widths
        self.branch0 = _Unit3D(cin, a)
        self.branch1 = nn.Sequential(_Unit3D(cin, b_reduce), _Unit3D(b_reduce, b, (3, 3, 3)))
        self.branch2 = nn.Sequential(_Unit3D(cin, c_reduce), _Unit3D(c_reduce, c, (3, 3, 3)))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), _Unit3D(cin, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


# (name, input channels, branch widths) of the Mixed blocks, as in the I3D paper.
_I3D_BLOCKS = [
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("MaxPool3d_4a", 0, ()),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a", 0, ()),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
]


class InceptionI3d(nn.Module):
    """RGB I3D: (B, 3, T, 224, 224) in [-1, 1] -> (B, num_classes) logits averaged over time."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        layers: dict[str, nn.Module] = {
            "Conv3d_1a_7x7": _Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),
            "MaxPool3d_2a_3x3": nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            "Conv3d_2b_1x1": _Unit3D(64, 64),
            "Conv3d_2c_3x3": _Unit3D(64, 192, (3, 3, 3)),
            "MaxPool3d_3a_3x3": nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        }
        for name, cin, widths in _I3D_BLOCKS:
            if name == "MaxPool3d_4a":
                layers[name] = nn.MaxPool3d(3, stride=2, padding=1)
            elif name == "MaxPool3d_5a":
                layers[name] = nn.MaxPool3d(2, stride=2)
            else:
                layers[name] = _Mixed(cin, widths)
        self.features = nn.Sequential(*layers.values())
        self.logits = nn.Conv3d(1024, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = F.adaptive_avg_pool3d(x, (x.shape[2], 1, 1))  # spatial average (7x7 at 224x224)
        return self.logits(x).mean(dim=(2, 3, 4))


class FVDDetector(nn.Module):
    """`InceptionI3d` behind the TorchScript FVD convention (see the module docstring)."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.i3d = InceptionI3d(num_classes)

    def forward(
        self, videos: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        if rescale:  # [0, 255] -> [-1, 1]
            videos = videos / 127.5 - 1
        if resize:
            videos = F.interpolate(
                videos, size=(videos.shape[2], 224, 224), mode="trilinear", align_corners=False
            )
        logits = self.i3d(videos)
        return logits if return_features else logits.softmax(-1)


class C3D(nn.Module):
    """C3D for 16 x 112 x 112 clips; layer names as in the widely used PyTorch port."""

    def __init__(self, num_classes: int = 101, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1, 1))

        def conv(cin: int, cout: int) -> nn.Conv3d:
            return nn.Conv3d(cin, cout, 3, padding=1)

        self.conv1, self.conv2 = conv(3, 64), conv(64, 128)
        self.conv3a, self.conv3b = conv(128, 256), conv(256, 256)
        self.conv4a, self.conv4b = conv(256, 512), conv(512, 512)
        self.conv5a, self.conv5b = conv(512, 512), conv(512, 512)
        self.pool1 = nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2))
        self.pool = nn.MaxPool3d(2, stride=2)
        self.pool5 = nn.MaxPool3d(2, stride=2, padding=(0, 1, 1))
        self.fc6, self.fc7, self.fc8 = (
            nn.Linear(8192, 4096),
            nn.Linear(4096, 4096),
            nn.Linear(4096, num_classes),
        )
        self.dropout = nn.Dropout(0.5)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = (clips - self.mean) / self.std
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3b(F.relu(self.conv3a(x)))))
        x = self.pool(F.relu(self.conv4b(F.relu(self.conv4a(x)))))
        x = self.pool5(F.relu(self.conv5b(F.relu(self.conv5a(x)))))
        x = self.dropout(F.relu(self.fc6(x.flatten(1))))
        x = self.dropout(F.relu(self.fc7(x)))
        return self.fc8(x)


def export_torchscript(module: nn.Module, path) -> None:
    """Script `module` (eval mode) and save it where `eval videos --i3d/--c3d` can load it."""
    torch.jit.script(module.eval()).save(str(path))
