"""SimpleFPN computes detectron2's ViTDet SimpleFeaturePyramid: the same five maps from the same weights.

The reference below is written from detectron2's published code (commit 02b5c4e2): `SimpleFeaturePyramid` in
`detectron2/modeling/backbone/vit.py` with norm='LN', detectron2's own channel `LayerNorm`
(`detectron2/layers/batch_norm.py`), its `Conv2d` with a `norm` attribute (`detectron2/layers/wrappers.py`)
and the `LastLevelMaxPool` top block (`detectron2/modeling/backbone/fpn.py`). Its weights carry detectron2's
key names (`backbone.simfp_{2,3,4,5}.*`) and are moved into our SimpleFPN by the checkpoint renamer.
"""
import torch
import torch.nn.functional as F
from torch import nn

from mae_transfer.checkpoint.formats import rename_detectron2_pyramid
from mae_transfer.models.necks.simple_fpn import SimpleFPN


class D2LayerNorm(nn.Module):
    """detectron2.layers.LayerNorm: normalise over the channels of an NCHW map."""

    def __init__(self, normalized_shape, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class D2Conv2d(nn.Conv2d):
    """detectron2.layers.Conv2d: a conv followed by its `norm` module."""

    def __init__(self, *args, norm=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm

    def forward(self, x):
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return self.norm(x) if self.norm is not None else x


class D2SimpleFeaturePyramid(nn.Module):
    """The pyramid part of detectron2's SimpleFeaturePyramid (norm='LN', top_block=LastLevelMaxPool())."""

    def __init__(self, dim, out_channels, scale_factors=(4.0, 2.0, 1.0, 0.5)):
        super().__init__()
        self.stages = []
        for scale in scale_factors:
            out_dim = dim
            if scale == 4.0:
                layers = [nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2), D2LayerNorm(dim // 2),
                          nn.GELU(), nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2)]
                out_dim = dim // 4
            elif scale == 2.0:
                layers = [nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)]
                out_dim = dim // 2
            elif scale == 1.0:
                layers = []
            else:
                layers = [nn.MaxPool2d(kernel_size=2, stride=2)]
            layers += [D2Conv2d(out_dim, out_channels, kernel_size=1, bias=False, norm=D2LayerNorm(out_channels)),
                       D2Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False,
                                norm=D2LayerNorm(out_channels))]
            stage = int(torch.log2(torch.tensor(16 / scale)).item())  # stride 4 ... 32 -> simfp_2 ... simfp_5
            layers = nn.Sequential(*layers)
            self.add_module(f'simfp_{stage}', layers)
            self.stages.append(layers)

    def forward(self, features):
        results = [stage(features) for stage in self.stages]
        results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0))  # LastLevelMaxPool: p6
        return results


def test_simple_fpn_matches_detectron2_pyramid():
    torch.manual_seed(0)
    dim, out_channels = 64, 32
    reference = D2SimpleFeaturePyramid(dim, out_channels).eval()
    with torch.no_grad():
        for param in reference.parameters():  # random weights, norms included (not ones and zeros)
            param.copy_(torch.randn_like(param) * 0.2)
    d2_state = {f'backbone.{k}': v for k, v in reference.state_dict().items()}
    assert {'backbone.simfp_2.0.weight', 'backbone.simfp_2.1.weight', 'backbone.simfp_2.3.bias',
            'backbone.simfp_2.4.norm.weight', 'backbone.simfp_2.5.weight', 'backbone.simfp_3.0.weight',
            'backbone.simfp_4.0.weight', 'backbone.simfp_4.1.norm.bias', 'backbone.simfp_5.1.weight',
            'backbone.simfp_5.2.norm.weight'} <= set(d2_state)  # detectron2's published names

    ours = SimpleFPN(in_channels=dim, out_channels=out_channels).eval()
    ours.load_state_dict({rename_detectron2_pyramid(k): v for k, v in d2_state.items()}, strict=True)

    x = torch.randn(2, dim, 8, 12)  # a non-square stride-16 map
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert len(got) == len(expected) == 5
    for level, (e, g) in enumerate(zip(expected, got)):
        assert e.shape == g.shape, level
        assert ((g - e).norm() / e.norm()).item() < 1e-4, level


def test_simple_fpn_convs_keep_pytorch_default_init():
    """detectron2's SimpleFeaturePyramid does not re-initialise its convs (its classic FPN applies
    c2_xavier_fill; ViTDet's pyramid does not): PyTorch's default bound is 1 / sqrt(fan_in) for a=sqrt(5)."""
    torch.manual_seed(0)
    fpn = SimpleFPN(in_channels=64, out_channels=256)
    weight = fpn.output_convs[0][0].weight  # [256, 256, 3, 3]
    bound = 1 / (256 * 9) ** 0.5
    assert weight.abs().max().item() <= bound
    assert weight.abs().max().item() > 0.9 * bound  # c2_xavier_fill's bound would be sqrt(3 / fan_in)
