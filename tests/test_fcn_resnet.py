import pytest
import torch
import torch.nn.functional as F
import torchvision
from mmdet.models.backbones import ResNet

from acnet_backbone import ACResNet, FCNResNet
from conftest import log_lines, randomize_bn, rel_err


@pytest.fixture(scope='module')
def tv_resnet18(tmp_path_factory):
    """A torchvision resnet18 with random weights and BN statistics, saved
    like a torchvision classification checkpoint (no download)."""
    torch.manual_seed(3)
    model = randomize_bn(torchvision.models.resnet18(num_classes=10)).eval()
    path = tmp_path_factory.mktemp('ckpt') / 'resnet18_tv.pth'
    torch.save(model.state_dict(), path)
    return model, str(path)


def test_plain_fcnresnet_is_stock_resnet():
    torch.manual_seed(0)
    fcn = randomize_bn(FCNResNet(50, base_channels=8, stem_channels=8)).eval()
    stock = ResNet(50, base_channels=8, stem_channels=8)
    stock.eval()
    stock.load_state_dict(fcn.state_dict(), strict=True)
    assert set(stock.state_dict()) == set(fcn.state_dict())
    x = torch.randn(1, 3, 64, 96)
    for a, b in zip(fcn(x), stock(x)):
        assert torch.equal(a, b)


@pytest.mark.parametrize('cls', [FCNResNet, ACResNet])
@pytest.mark.parametrize('size', [(224, 224), (320, 480), (199, 257)])
def test_logits_equal_torchvision(tv_resnet18, cls, size):
    model, path = tv_resnet18
    # an ACResNet equals the plain network only with its branches at gamma 0
    extra = dict(acb_gamma_init=0.0) if cls is ACResNet else {}
    net = cls(18, include_top=True, num_classes=10,
              init_cfg=dict(type='Pretrained', checkpoint=path), **extra)
    net.init_weights()
    net.eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        out = net(x)
        ref = model(x)
    assert out.shape == (2, 10, 1, 1)
    assert rel_err(out[:, :, 0, 0], ref) < 1e-5


def test_window_map(tv_resnet18):
    model, path = tv_resnet18
    net = FCNResNet(18, include_top=True, num_classes=10, top_pool=7,
                    init_cfg=dict(type='Pretrained', checkpoint=path))
    net.init_weights()
    net.eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 224, 224)
        assert rel_err(net(x)[:, :, 0, 0], model(x)) < 1e-5
        dense = net(torch.randn(1, 3, 320, 480))
    assert dense.shape == (1, 10, 10 - 6, 15 - 6)
    with pytest.raises(ValueError, match='at least 193x193'):
        net(torch.randn(1, 3, 192, 300))


def test_fc_loaded_not_skipped(tv_resnet18):
    """mmengine would skip a [K, C] fc for a [K, C, 1, 1] conv with a warning;
    ours reshapes it."""
    model, path = tv_resnet18
    net = FCNResNet(18, include_top=True, num_classes=10,
                    init_cfg=dict(type='Pretrained', checkpoint=path))
    net.init_weights()
    assert torch.equal(net.fc.weight[:, :, 0, 0], model.fc.weight)
    assert torch.equal(net.fc.bias, model.fc.bias)


def test_backbone_only_load_drops_classifier(tv_resnet18):
    model, path = tv_resnet18
    net = ACResNet(18, acb_gamma_init=0.0,
                   init_cfg=dict(type='Pretrained', checkpoint=path))
    net.init_weights()
    assert not hasattr(net, 'fc')
    assert torch.equal(net.layer3[1].conv2.weight, model.layer3[1].conv2.weight)
    assert torch.all(net.layer3[1].conv2.acb.hor_bn.weight == 0)


def test_top_none_is_per_location_scores():
    net = FCNResNet(18, include_top=True, num_classes=5, top_pool=None).eval()
    out = net(torch.randn(1, 3, 128, 96))
    assert out.shape == (1, 5, 4, 3)


def test_upsample_is_bilinear_away_from_borders():
    torch.manual_seed(0)
    net = FCNResNet(18, include_top=True, num_classes=3, top_pool=None,
                    upsample=True, base_channels=8).eval()
    x = torch.randn(1, 3, 256, 320)
    with torch.no_grad():
        feat = net.fc(ResNet.forward(net, x)[-1])
        out = net(x)
        ref = F.interpolate(feat, scale_factor=32, mode='bilinear',
                            align_corners=False)
    assert out.shape == (1, 3, 256, 320)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    assert rel_err(out[inner], ref[inner]) < 1e-5
    # and the border really differs (zero padding vs edge clamping): the
    # comparison above is not vacuous
    assert not torch.allclose(out[..., :16, :], ref[..., :16, :], atol=1e-4)


def test_upsample_size_not_multiple_of_32_is_cropped_not_shifted():
    torch.manual_seed(0)
    net = FCNResNet(18, include_top=True, num_classes=2, top_pool=None,
                    upsample=True, base_channels=8).eval()
    x = torch.randn(1, 3, 200, 250)
    with torch.no_grad():
        feat = net.fc(ResNet.forward(net, x)[-1])  # 7 x 8 locations
        out = net(x)
        full = F.interpolate(feat, scale_factor=32, mode='bilinear',
                             align_corners=False)  # 224 x 256
    assert out.shape == (1, 2, 200, 250)
    inner = (slice(None), slice(None), slice(16, 184), slice(16, 234))
    assert rel_err(out[inner], full[inner]) < 1e-5


@pytest.mark.parametrize('kwargs, match', [
    (dict(top_pool='max'), 'top_pool'),
    (dict(top_pool=0), 'top_pool'),
    (dict(upsample=True), 'top_pool=None'),
    (dict(num_classes=0), 'num_classes'),
    (dict(out_indices=(0, 1)), 'last stage'),
])
def test_bad_top_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FCNResNet(18, include_top=True, **kwargs)


def test_acresnet_top_fuses_exactly():
    net = randomize_bn(ACResNet(18, include_top=True, num_classes=4,
                                top_pool=None, upsample=True,
                                acb_gamma_init=0.7, base_channels=8)).eval()
    x = torch.randn(1, 3, 96, 128)
    before = net(x)
    net.switch_to_deploy()
    assert rel_err(net(x), before) < 1e-5
    ref = FCNResNet(18, include_top=True, num_classes=4, top_pool=None,
                    upsample=True, base_channels=8).eval()
    ref.load_state_dict(net.state_dict(), strict=True)
    assert rel_err(ref(x), before) < 1e-5


def test_fcn_demo_tool(tmp_path):
    import os.path as osp
    import subprocess
    import sys

    import numpy as np
    from PIL import Image
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    torch.manual_seed(0)
    ckpt = tmp_path / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), ckpt)
    rng = np.random.default_rng(0)
    image = tmp_path / 'img.jpg'
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(
        image)
    out = tmp_path / 'heat.png'
    tool = osp.join(root, 'tools', 'fcn_demo.py')
    result = subprocess.run(
        [sys.executable, tool, str(image), '--checkpoint', str(ckpt),
         '--out', str(out), '--size', '256'], capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    top5 = [line for line in result.stdout.splitlines()
            if line.strip() and not line.startswith('wrote')]
    assert len(top5) == 5
    with Image.open(out) as png:
        png.verify()
        assert png.format == 'PNG'
    bad = subprocess.run([sys.executable, tool, str(tmp_path / 'none.jpg'),
                          '--checkpoint', str(ckpt)], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith('error:')


def test_pretrained_load_reports_in_one_log_line(tv_resnet18):
    """The ACB keys a plain checkpoint lacks are summarised, not listed."""
    from mmengine.logging import MMLogger
    _, path = tv_resnet18
    MMLogger.get_instance('acnet_one_line_test', log_level='INFO')
    net = ACResNet(18, init_cfg=dict(type='Pretrained', checkpoint=path))
    records = log_lines(net.init_weights)
    mine = [r for r in records if r.startswith('ACResNet: loaded')]
    assert len(mine) == 1 and '\n' not in mine[0]
    # 16 ACB convs x 2 branches x (kernel + 4 BN tensors; BN fills in a missing
    # num_batches_tracked itself)
    assert '160 ACB branch tensors not in it keep their init' in mine[0]
    assert 'classifier fc.weight, fc.bias ignored' in mine[0]
    assert 'missing' not in mine[0] and 'unexpected' not in mine[0]
