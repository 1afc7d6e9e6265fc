"""Stage: networks. The three classifiers of the thesis (Tables 2-4) and the
class-conditional U-Net that predicts the noise epsilon.

All models take images in the project's single pixel convention: float tensors of
shape (B, 1, 28, 28) with values in [-1, 1] and a black background at -1
(see :func:`kr_utils.data.to_model_range`). :func:`predict_logits` and :func:`features`
run a trained classifier on many images.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from .data import Batcher
from .runtime import autocast, channels_last

# A model built without data (a unit test, a parameter count) has MNIST's ten classes and one
# channel; the pipeline builds each from its data (:func:`classes_of`, the dataset's info).
NUM_CLASSES = 10


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (what the thesis' tables report)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- classifiers
class SimpleCNN(nn.Module):
    """Thesis Table 2: two Conv-ReLU-MaxPool blocks, then two dense layers (421,642 params)."""

    def __init__(self, dropout: float = 0.25, num_classes: int = NUM_CLASSES, in_channels: int = 1,
                 image_size: int = 28):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Dropout(dropout),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * (image_size // 4) ** 2, 128), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(128, num_classes),
        )

    def forward(self, x):
        return self.head(self.features(x))


def _conv_bn_relu(cin, cout, k, padding):
    # Bias-free convs: the BatchNorm that follows has its own shift (Table 3 counts no bias).
    return [nn.Conv2d(cin, cout, k, padding=padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class CompressedCNN(nn.Module):
    """Thesis Table 3 (MNISTNet1): channels 1-8-16-4-8-16-16, BN after each conv,
    global average pool and a 1x1 conv head (5,328 params)."""

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 1, image_size: int = 28):
        super().__init__()
        self.net = nn.Sequential(
            *_conv_bn_relu(in_channels, 8, 3, 1), *_conv_bn_relu(8, 16, 3, 1), nn.MaxPool2d(2),
            *_conv_bn_relu(16, 4, 1, 0), *_conv_bn_relu(4, 8, 3, 0),
            *_conv_bn_relu(8, 16, 3, 0), *_conv_bn_relu(16, 16, 3, 0),
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, num_classes, 1, bias=False), nn.Flatten(),
        )

    def forward(self, x):
        return self.net(x)


class PreActBlock(nn.Module):
    """Pre-activation BasicBlock (He et al. 2016): BN-ReLU-conv twice, plus the shortcut.
    A 1x1 projection shortcut is used when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        # The projection sees the pre-activated input, as in hysts/pytorch_resnet_preact.
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class ResNetPreAct(nn.Module):
    """Thesis Table 4: ResNet PreAct-20 with a 1-channel 16-filter stem, three stages of
    three blocks at 16/32/64 channels, final BN-ReLU, average pool and a linear layer.

    With a 1-channel stem this is 271,994 parameters; the thesis prints 272,666 (its
    Table 4 rows do not add up to that total), see the book's pipeline chapter.
    """

    def __init__(self, widths=(16, 32, 64), blocks_per_stage: int = 3, num_classes: int = NUM_CLASSES,
                 in_channels: int = 1, image_size: int = 28):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks_per_stage):
                layers.append(PreActBlock(cin, w, stride=2 if (i > 0 and b == 0) else 1))
                cin = w
        self.stages = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)

    def features(self, x):
        """Penultimate features (64-d), used for diversity measures in feature space."""
        out = F.relu(self.bn(self.stages(self.stem(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


CLASSIFIERS = {"simple_cnn": SimpleCNN, "compressed_cnn": CompressedCNN, "resnet_preact": ResNetPreAct}


# each classifier's first convolution and last layer, whose shapes give channels and classes
_ENDS = {"simple_cnn": ("features.0.weight", "head.4.weight"), "compressed_cnn": ("net.0.weight", "net.20.weight"),
         "resnet_preact": ("stem.weight", "fc.weight")}


def classes_of(train) -> dict:
    """``{"num_classes", "in_channels", "image_size"}`` of a training set ``(x, labels[, teacher
    logits])``: the classes from the teacher's logits when there are any, else from the labels
    (the highest + 1), the channels and size from the images."""
    x = train[0]
    k = train[2].shape[1] if len(train) > 2 and train[2] is not None else int(train[1].max()) + 1
    return {"num_classes": int(k), "in_channels": int(x.shape[1]), "image_size": int(x.shape[-1])}


def build_classifier(name: str, state_dict: dict | None = None, **shape) -> nn.Module:
    """Instantiate a classifier by its name in :data:`CLASSIFIERS` (``shape``: ``num_classes``,
    ``in_channels``, ``image_size``, as :func:`classes_of` gives them), with trained weights when
    ``state_dict`` is given; its classes and channels are then read from the weights."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; expected one of {sorted(CLASSIFIERS)}")
    if state_dict is not None and not shape:
        first, last = _ENDS[name]
        shape = {"in_channels": state_dict[first].shape[1], "num_classes": state_dict[last].shape[0]}
        if name == "simple_cnn":
            shape["image_size"] = 4 * round((state_dict["head.1.weight"].shape[1] // 64) ** 0.5)
    model = CLASSIFIERS[name](**shape)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model


# --------------------------------------------------------------------------- inference


@torch.no_grad()
def predict_logits(model, x: torch.Tensor, batch_size: int = 1000, device=None) -> torch.Tensor:
    """Logits for model-range images ``x`` (N,1,28,28), computed in batches, returned on CPU."""
    device = device or next(model.parameters()).device
    model.eval().to(memory_format=torch.channels_last)
    with autocast(device):
        return torch.cat([model(channels_last(x[idx].to(device))).float().cpu()
                          for idx in Batcher(len(x), batch_size).epoch()])


@torch.no_grad()
def features(model, x: torch.Tensor, batch_size: int = 1000, device=None) -> torch.Tensor:
    """The classifier's penultimate features (``model.features``: the pooled 64-d vector of
    the ResNet teacher), the space where the diversity of generated digits is measured."""
    if not hasattr(model, "features"):
        raise ValueError(f"{type(model).__name__} has no .features(x); use the ResNet PreAct teacher")
    device = device or next(model.parameters()).device
    model.eval().to(memory_format=torch.channels_last)
    with autocast(device):  # the precision and layout predict_logits uses: 4x faster on a bf16 CPU
        return torch.cat([model.features(channels_last(x[idx].to(device))).flatten(1).float().cpu()
                          for idx in Batcher(len(x), batch_size).epoch()])


# --------------------------------------------------------------------------- U-Net
def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (Vaswani et al.; Ho et al. 2020)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the time+class embedding is added between the convs."""

    def __init__(self, cin: int, cout: int, emb_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(min(8, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over the 7x7 bottleneck (49 tokens: cheap on a CPU)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.out(a.transpose(1, 2).reshape(b, c, h, w))


class ConditionalUNet(nn.Module):
    """Class-conditional U-Net for epsilon-prediction, 28 -> 14 -> 7 and back.

    The class enters as a learned embedding added to the time embedding; index
    ``num_classes`` (the dataset's number of classes) is the "no class" token used for
    classifier-free guidance (the thesis drops the class with p=0.1 during training, see
    :func:`kr_utils.diffusion.train_diffusion`). ``channels``, ``image_size``: the images'.
    """

    def __init__(self, base: int = 32, mults=(1, 2, 2), blocks: int = 1, attention: bool = True,
                 num_classes: int = NUM_CLASSES, channels: int = 1, image_size: int = 28):
        super().__init__()
        self.config = dict(base=base, mults=tuple(mults), blocks=blocks, attention=attention,
                           num_classes=num_classes, channels=channels, image_size=image_size)
        self.null_class, self.sample_shape = num_classes, (channels, image_size, image_size)
        emb_dim = 4 * base
        self.base = base
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim)
        self.stem = nn.Conv2d(channels, base, 3, padding=1)
        chans = [base * m for m in mults]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, cin = [], base
        for i, c in enumerate(chans):
            level = nn.ModuleList()
            for _ in range(blocks):
                level.append(ResBlock(cin, c, emb_dim))
                cin = c
                skips.append(c)
            self.down.append(level)
            last = i == len(chans) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid1 = ResBlock(cin, cin, emb_dim)
        self.attn = SelfAttention(cin) if attention else nn.Identity()
        self.mid2 = ResBlock(cin, cin, emb_dim)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, c in reversed(list(enumerate(chans))):
            level = nn.ModuleList()
            for _ in range(blocks):
                level.append(ResBlock(cin + skips.pop(), c, emb_dim))
                cin = c
            self.up.append(level)
            self.upsample.append(nn.Identity() if i == 0 else nn.Upsample(scale_factor=2, mode="nearest"))
        self.out = nn.Sequential(nn.GroupNorm(min(8, cin), cin), nn.SiLU(), nn.Conv2d(cin, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)  # start as "predict zero noise": a stable first step
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (B,1,28,28) noisy images; t: (B,) integer steps in [0, T); y: (B,) labels,
        with ``null_class`` meaning "unconditional"."""
        emb = self.time_mlp(timestep_embedding(t, self.base)) + self.class_emb(y)
        h = self.stem(x)
        hs = []
        for level, down in zip(self.down, self.downsample):
            for block in level:
                h = block(h, emb)
                hs.append(h)
            h = down(h)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        for level, up in zip(self.up, self.upsample):
            for block in level:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            h = up(h)
        return self.out(h)
