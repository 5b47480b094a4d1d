"""Cells and experts: parameter counts of known genotypes, shapes, genotype checks."""
import pytest
import torch

from par.nets.cells import Expert, SuperNet, reduction_layers
from par.nets.genotypes import DARTS_V2, Genotype, genotype_json
from par.nets.model import MultiHeadModel, count_parameters
from par.nets.resnet import LightResNet18


def uniform_genotype(normal_op, reduce_op):
    pairs = lambda op: ((op, 0), (op, 1)) * 4   # noqa: E731  inputs 0/1 are valid for every node
    return Genotype(normal=pairs(normal_op), reduce=pairs(reduce_op))


def test_reduction_layers():
    assert reduction_layers(4) == {1, 2}
    assert reduction_layers(3) == {1, 2}
    assert reduction_layers(6) == {2, 4}


def test_parameter_count_of_a_pooling_cell_by_hand():
    # Only stem and preprocessing convs have parameters (L = 4, stem 3C):
    # stem 27*3C + BN 2*3C; cells' preprocessing: (3+3) + (3+4) + (4+4) + (4+4) = 29 C^2 weights
    # and 8 BNs of 2C  ->  29 C^2 + 103 C.
    c = 8
    expert = Expert(uniform_genotype("max_pool_3x3", "max_pool_3x3"), channels=c, n_layers=4)
    assert count_parameters(expert) == 29 * c * c + 103 * c == 2680
    assert expert.out_features == 4 * c


def test_parameter_count_with_separable_convs_by_hand():
    # sep_conv_3x3 (C -> C) = 2 x (depthwise 9C + pointwise C^2 + BN 2C); 8 per normal cell, 2 normal cells.
    c = 8
    expert = Expert(uniform_genotype("sep_conv_3x3", "max_pool_3x3"), channels=c, n_layers=4)
    assert count_parameters(expert) == 2680 + 2 * 8 * 2 * (c * c + 11 * c) == 7544


def test_light_resnet18_parameter_count_by_hand():
    # conv1 27*64 + BN 128; 8 blocks x (2 x 9*64*64 + 2 x 128); 3 downsamples x (64*64 + 128)
    assert count_parameters(LightResNet18(64)) == 1728 + 128 + 8 * (2 * 36864 + 256) + 3 * (4096 + 128) == 606400


def test_expert_and_heads_forward_shapes():
    model = MultiHeadModel({"kind": "expert", "genotype": DARTS_V2.to_json(), "channels": 8, "n_layers": 4}, {1: 2})
    model.add_head(2, 5)
    x = torch.randn(3, 3, 32, 32)
    assert model(x, 1).shape == (3, 2) and model(x, 2).shape == (3, 5)
    assert count_parameters(model) == count_parameters(model.body) + (32 * 2 + 2) + (32 * 5 + 5)
    with pytest.raises(ValueError, match="already has a head"):
        model.add_head(2, 5)


def test_supernet_runs_any_sampled_architecture():
    net = SuperNet(3, channels=4, n_layers=3)
    x = torch.randn(2, 3, 32, 32)
    for op in range(6):
        assert net(x, [op] * 14, [(op + 1) % 6] * 14).shape == (2, 3)


def test_genotype_validation_and_json():
    assert Genotype.from_json(DARTS_V2.to_json()) == DARTS_V2
    with pytest.raises(ValueError, match="none"):
        uniform_genotype("none", "max_pool_3x3")
    bad = list(DARTS_V2.normal)
    bad[0] = ("sep_conv_3x3", 2)   # node 2 cannot read itself
    with pytest.raises(ValueError, match="does not precede"):
        Genotype(normal=tuple(bad), reduce=DARTS_V2.reduce)
    assert genotype_json("darts_v2", None) == DARTS_V2.to_json()
    with pytest.raises(ValueError, match="no cell file"):
        genotype_json(3, None)


def test_factorized_reduce_skips_its_batchnorm_by_default_as_the_authors():
    from par.nets.cells import FactorizedReduce

    x = torch.zeros(1, 2, 4, 4)
    x[0, 0] = torch.arange(16.0).view(4, 4) - 5     # ReLU zeroes the first six entries
    x[0, 1] = 2.0
    op = FactorizedReduce(2, 4)                      # train mode: an applied BN would normalise
    with torch.no_grad():
        op.conv_1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 2, 1, 1))
        op.conv_2.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, -1.0]]).view(2, 2, 1, 1))
    # conv_1 reads rows/cols 0, 2 of relu(x); conv_2 reads rows/cols 1, 3.
    expected = torch.tensor([[[0.0, 0.0], [3.0, 5.0]],
                             [[2.0, 2.0], [2.0, 2.0]],
                             [[2.0, 4.0], [10.0, 12.0]],
                             [[-2.0, -2.0], [-2.0, -2.0]]]).unsqueeze(0)
    assert torch.equal(op(x), expected)
    with_bn = FactorizedReduce(2, 4, apply_bn=True)
    with_bn.load_state_dict(op.state_dict())
    out = with_bn(x)
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-6    # DARTS: batch-normalised channels
    # The BN exists either way and counts in M: 2x(2x2) conv weights + 2x4 affine.
    assert count_parameters(op) == count_parameters(with_bn) == 16


def test_factorized_reduce_switch_reaches_experts_and_the_supernet():
    from par.nets.cells import FactorizedReduce

    genotype = uniform_genotype("max_pool_3x3", "max_pool_3x3")
    spec = {"kind": "expert", "genotype": genotype.to_json(), "channels": 8, "n_layers": 4}
    for flag in (False, True):
        body = MultiHeadModel({**spec, "factorized_reduce_bn": flag}).body
        reduces = [m for m in body.modules() if isinstance(m, FactorizedReduce)]
        assert reduces and all(m.apply_bn is flag for m in reduces)
        assert count_parameters(body) == 2680            # as in the hand count above
        net = SuperNet(3, channels=4, n_layers=3, factorized_reduce_bn=flag)
        reduces = [m for m in net.modules() if isinstance(m, FactorizedReduce)]
        assert reduces and all(m.apply_bn is flag for m in reduces)
    assert all(not m.apply_bn for m in MultiHeadModel(spec).body.modules() if isinstance(m, FactorizedReduce))


def test_body_kinds_come_from_the_registry_each_body_module_fills():
    """Every body kind a spec may name is registered by its module (par.nets.bodies);
    build_body picks the builder by name and an unknown kind names the known ones."""
    from par.nets.bodies import BODIES
    from par.nets.growing_bodies import GrowBody, ModularBody, ProgressiveBody
    from par.nets.hat_bodies import HATMLP, HATLightResNet18
    from par.nets.model import build_body

    assert sorted(BODIES) == ["expert", "hat_light_resnet18", "hat_mlp", "light_resnet18", "ltg", "mntdp", "pn"]
    genotype = uniform_genotype("max_pool_3x3", "max_pool_3x3").to_json()
    kinds = {"expert": ({"genotype": genotype, "channels": 4, "n_layers": 2}, Expert),
             "light_resnet18": ({"width": 2}, LightResNet18), "hat_light_resnet18": ({"width": 2}, HATLightResNet18),
             "hat_mlp": ({"in_features": 12, "hidden": 3}, HATMLP), "pn": ({"width": 2}, ProgressiveBody),
             "ltg": ({"width": 2}, GrowBody), "mntdp": ({"width": 2}, ModularBody)}
    for kind, (spec, cls) in kinds.items():
        assert type(build_body({"kind": kind, **spec})) is cls, kind
    assert build_body({"kind": "light_resnet18", "width": 3}).out_features == 3
    with pytest.raises(ValueError, match=r"^unknown body kind 'resnet50'; registered: \['expert', 'hat_light_resnet18', "):
        build_body({"kind": "resnet50"})
