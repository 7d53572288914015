import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.train.config import OptimizerConfig, ScheduleConfig
from cnnlab.train.optim import build_optimizer, build_scheduler, split_decay_parameters
from cnnlab.train.regularization import WeightPenalty


def small_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def test_weight_decay_skips_biases_and_norms():
    net = small_net()
    decay, no_decay = split_decay_parameters(net)
    assert {id(p) for p in decay} == {id(net[0].weight), id(net[3].weight)}
    assert len(no_decay) == 4  # conv bias, bn weight+bias, fc bias
    optimizer = build_optimizer(net, OptimizerConfig(name="adamw", weight_decay=0.1))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]


def lrs(config, epochs=4, steps=10, lr=1.0):
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=lr)
    scheduler, unit = build_scheduler(optimizer, config, epochs, steps)
    values = []
    for _ in range(epochs * steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values, unit


def test_step_and_multistep_and_warmup():
    values, unit = lrs(ScheduleConfig(name="step", step_size=2, gamma=0.5))
    assert unit == "step" and values[0] == 1.0 and values[19] == 1.0 and values[20] == 0.5
    values, _ = lrs(ScheduleConfig(name="multistep", milestones=(1, 3), gamma=0.1))
    assert values[9] == 1.0 and values[10] == pytest.approx(0.1) and values[30] == pytest.approx(0.01)
    values, _ = lrs(ScheduleConfig(name="none", warmup_epochs=1))
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)


def test_cosine_ends_at_min_lr_and_onecycle_peaks_mid():
    values, _ = lrs(ScheduleConfig(name="cosine", min_lr=0.01))
    assert values[0] == pytest.approx(1.0) and values[-1] == pytest.approx(0.01, abs=0.01)
    values, _ = lrs(ScheduleConfig(name="onecycle", pct_start=0.25))
    peak = max(range(len(values)), key=values.__getitem__)
    assert 8 <= peak <= 11 and values[-1] < 1e-3


def test_unknown_names_are_config_errors():
    with pytest.raises(ConfigError, match="schedule.name"):
        lrs(ScheduleConfig(name="cosinus"))
    with pytest.raises(ConfigError, match="optimizer.name"):
        build_optimizer(small_net(), OptimizerConfig(name="lbfgs2"))


def test_penalty_values():
    net = small_net()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(0.5)
    weights = net[0].weight.numel() + net[3].weight.numel()
    assert WeightPenalty(net, l1=2.0)().item() == pytest.approx(2.0 * 0.5 * weights)
    assert WeightPenalty(net, l2=2.0)().item() == pytest.approx(2.0 * 0.25 * weights)
