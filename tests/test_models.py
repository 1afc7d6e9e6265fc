import pytest
import torch

from kr_utils import models


@pytest.mark.parametrize("name,count", [("simple_cnn", 421_642), ("compressed_cnn", 5_328),
                                         ("resnet_preact", 271_994)])
def test_classifier_parameter_counts_and_shapes(name, count):
    m = models.build_classifier(name)
    assert models.count_parameters(m) == count
    m.eval()
    assert m(torch.randn(4, 1, 28, 28)).shape == (4, 10)


def test_unknown_classifier():
    with pytest.raises(ValueError, match="unknown classifier 'vgg'"):
        models.build_classifier("vgg")


def test_unet_shapes_and_conditioning():
    torch.manual_seed(0)
    u = models.ConditionalUNet(base=8, mults=(1, 2, 2), attention=True)
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0, 500, 999])
    # the output layer starts at zero: a stable first step
    assert torch.all(u(x, t, torch.tensor([1, 2, 10])) == 0)
    torch.nn.init.normal_(u.out[-1].weight)
    a = u(x, t, torch.tensor([1, 2, 3]))
    b = u(x, t, torch.full((3,), u.null_class))
    assert a.shape == (3, 1, 28, 28)
    assert not torch.allclose(a, b)  # the class changes the prediction
