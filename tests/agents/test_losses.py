"""Known-answer tests of the loss functions and the shared network helpers, on hand-worked cases."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from echelon.agents.bc import BC, BCConfig
from echelon.agents.common import Batch, EnsembleLinear, init_parameters, mlp, soft_update
from echelon.agents.cql import CQL, CQLConfig, conservative_penalty, squashed_gaussian_log_prob
from echelon.agents.iql import EXP_ADVANTAGE_MAX, advantage_weights, asymmetric_l2_loss
from echelon.agents.registry import ALGORITHMS, algorithm_config
from echelon.agents.td3bc import TD3BC, TD3BCConfig


def tensor(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def set_linear(module: nn.Module, weight: list[float], bias: float) -> None:
    """Gives the one linear layer of ``module`` (every member, if an ensemble) these weights."""
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, EnsembleLinear))]
    assert len(layers) == 1, "the hand-worked cases use networks without hidden layers"
    layer = layers[0]
    with torch.no_grad():
        if isinstance(layer, nn.Linear):  # weight (1, in)
            layer.weight.copy_(torch.tensor([weight]))
            layer.bias.fill_(bias)
        else:  # weight (E, in, 1), bias (E, 1, 1)
            layer.weight.copy_(torch.tensor(weight)[None, :, None].expand_as(layer.weight))
            layer.bias.fill_(bias)


def batch(observations, actions, rewards=None) -> Batch:
    obs = torch.tensor(observations, dtype=torch.float32)
    act = torch.tensor(actions, dtype=torch.float32)
    rew = torch.zeros(len(obs), 1) if rewards is None else torch.tensor(rewards).reshape(-1, 1)
    return Batch(obs, act, rew, obs.clone(), torch.zeros(len(obs), 1))


# IQL ---------------------------------------------------------------------------------------------

def test_asymmetric_l2_weighs_under_estimates_by_tau():
    # u = Q - V > 0 (V under-estimates) weighs tau = 0.7, u < 0 weighs 1 - tau = 0.3.
    assert asymmetric_l2_loss(tensor(3.0), 0.7).item() == pytest.approx(0.7 * 9.0)
    assert asymmetric_l2_loss(tensor(-3.0), 0.7).item() == pytest.approx(0.3 * 9.0)
    # mean of 0.7 * 4 and 0.3 * 4
    assert asymmetric_l2_loss(tensor(2.0, -2.0), 0.7).item() == pytest.approx(2.0)
    assert asymmetric_l2_loss(tensor(0.0, 0.0), 0.7).item() == 0.0
    # tau = 0.5 is half the squared error, symmetric
    assert asymmetric_l2_loss(tensor(1.0, -3.0), 0.5).item() == pytest.approx(0.5 * (1 + 9) / 2)


def test_advantage_weights_are_exp_beta_a_clipped_at_100():
    advantage = tensor(-1.0, 0.0, 0.5, 2.0, 10.0)
    weights = advantage_weights(advantage, 3.0)
    expected = [math.exp(-3.0), 1.0, math.exp(1.5), 100.0, 100.0]  # exp(6) = 403 is clipped
    assert weights.tolist() == pytest.approx(expected, rel=1e-12)
    assert EXP_ADVANTAGE_MAX == 100.0
    assert advantage_weights(advantage, 0.0).tolist() == [1.0] * 5  # beta = 0: plain BC


# BC ----------------------------------------------------------------------------------------------

def test_bc_loss_is_the_squared_error_summed_over_actions():
    learner = BC(1, 2, BCConfig(hidden=()), 1, torch.Generator().manual_seed(0))
    linear = learner.actor.net[0]
    with torch.no_grad():  # pi(s) = tanh(0 * s + (atanh 0.5, 0)) = (0.5, 0) for every s
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([math.atanh(0.5), 0.0]))
    hand = batch([[1.0], [-2.0]], [[1.0, 0.0], [0.5, -1.0]])
    # rows: (0.5 - 1)^2 + 0^2 = 0.25 and 0^2 + (0 + 1)^2 = 1; mean 0.625
    assert learner.losses(hand)["actor_loss"] == pytest.approx(0.625, rel=1e-6)


# TD3+BC ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bc_weight, expected", [(1.0, -0.75), (0.0, -1.25)], ids=["td3bc", "td3"])
def test_td3bc_actor_loss_normalises_q_by_its_mean_magnitude(bc_weight, expected):
    config = TD3BCConfig(hidden=(), alpha=2.5, bc_weight=bc_weight)
    learner = TD3BC(1, 1, config, 1, torch.Generator().manual_seed(0))
    set_linear(learner.actor, [0.0], math.atanh(0.5))  # pi(s) = 0.5
    for name, module in learner.modules().items():
        if name != "actor" and name != "actor_target":
            set_linear(module, [1.0, 2.0], -3.0)  # Q(s, a) = s + 2a - 3
    hand = batch([[1.0], [5.0]], [[0.5], [-0.5]])
    # Q(s, pi(s)) = (-1, 3): mean |Q| = 2, lambda = 2.5 / 2 = 1.25, mean Q = 1 -> -1.25.
    # (At the data actions mean |Q| would be (1 + 2) / 2 = 1.5: the TD3+BC code uses pi's.)
    # BC term: ((0.5 - 0.5)^2 + (0.5 + 0.5)^2) / 2 = 0.5.
    assert learner.losses(hand)["actor_loss"] == pytest.approx(expected, rel=1e-6)


# CQL ---------------------------------------------------------------------------------------------

def test_conservative_penalty_on_a_hand_case():
    sampled_q = tensor([0.0, math.log(3.0)], [2.0, 2.0])  # (B=2, K=2)
    log_density = tensor([0.0, 0.0], [2.0, 2.0])
    data_q = tensor(1.0, 2.0)
    # T = 1: log(e^0 + e^ln3) = ln 4 and log(e^0 + e^0) = ln 2; their mean minus mean Q(s, a) = 1.5
    got = conservative_penalty(sampled_q, log_density, data_q, 1.0)
    assert got.item() == pytest.approx(1.5 * math.log(2.0) - 1.5, rel=1e-12)
    # T = 2: 2 * log(e^0 + e^(ln3 / 2)) and 2 * log 2
    got = conservative_penalty(sampled_q, log_density, data_q, 2.0)
    want = (2.0 * math.log(1.0 + math.sqrt(3.0)) + 2.0 * math.log(2.0)) / 2.0 - 1.5
    assert got.item() == pytest.approx(want, rel=1e-12)
    # small T approaches max_k (Q - log mu) - Q(s, a)
    got = conservative_penalty(sampled_q, log_density, data_q, 1e-3)
    assert got.item() == pytest.approx((math.log(3.0) + 0.0) / 2.0 - 1.5, abs=1e-2)
    # one penalty per critic along a leading axis
    two = conservative_penalty(torch.stack([sampled_q, sampled_q + 1.0]), log_density,
                               torch.stack([data_q, data_q]), 1.0)
    assert two.tolist() == pytest.approx([1.5 * math.log(2.0) - 1.5, 1.5 * math.log(2.0) - 0.5])


def test_squashed_gaussian_log_prob_matches_torch_distributions():
    u = torch.tensor([[-2.0, 0.3], [0.0, 1.5], [4.0, -0.7]], dtype=torch.float64)
    mean = torch.tensor([[0.1, -0.2], [0.0, 1.0], [3.0, 0.0]], dtype=torch.float64)
    log_std = torch.tensor([[-0.5, 0.2], [0.0, -1.0], [0.3, 0.0]], dtype=torch.float64)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), torch.distributions.TanhTransform()
    )
    got = squashed_gaussian_log_prob(u, mean, log_std)
    want = reference.log_prob(torch.tanh(u)).sum(dim=-1)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    # where tanh(u) rounds to 1 the log-density stays finite
    assert torch.isfinite(squashed_gaussian_log_prob(torch.tensor([[30.0]]), torch.zeros(1, 1),
                                                     torch.zeros(1, 1))).all()


def test_cql_penalty_uses_the_uniform_density_of_the_action_box():
    # A critic that is 0 everywhere: the uniform proposals contribute exp(0 + A log 2) each.
    config = CQLConfig(hidden=(), action_samples=4, conservative_weight=1.0)
    learner = CQL(2, 3, config, 1, torch.Generator().manual_seed(0))
    for name in ("critic", "target"):
        set_linear(learner.modules()[name], [0.0] * 5, 0.0)
    hand = batch([[0.0, 1.0], [1.0, 0.0]], [[0.0, 0.0, 0.0], [0.5, -0.5, 0.0]])
    state = learner.generator.get_state()
    losses = learner.losses(hand)
    assert torch.equal(learner.generator.get_state(), state)  # validation draws nothing
    # Recompute from the same draws: N uniform, then pi(s) and pi(s') samples.
    g = torch.Generator().set_state(state)
    learner.actor.sample(hand.observations, g)  # the actor-loss sample
    learner.actor.sample(hand.next_observations, g)  # the target's a'
    torch.rand((2, 4, 3), generator=g)
    _, log_pi = learner.actor.sample(hand.observations, g, 4)
    _, log_pi_next = learner.actor.sample(hand.next_observations, g, 4)
    log_density = torch.cat([torch.full((2, 4), -3 * math.log(2.0)), log_pi, log_pi_next], dim=1)
    want = torch.logsumexp(-log_density, dim=1).mean()
    assert losses["conservative_penalty"] == pytest.approx(want.item(), rel=1e-5)
    # Bellman error is 0 (Q = 0 = r + gamma * Q'); the critic loss is the weighted penalty of both
    assert losses["critic_loss"] == pytest.approx(2 * want.item(), rel=1e-5)


# Shared helpers ----------------------------------------------------------------------------------

def test_soft_update_is_polyak_averaging():
    source, target = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        source.weight.fill_(1.0), source.bias.fill_(1.0)
        target.weight.fill_(0.0), target.bias.fill_(-1.0)
    soft_update(target, source, 0.25)
    assert target.weight.tolist() == [[0.25, 0.25]]  # 0.75 * 0 + 0.25 * 1
    assert target.bias.tolist() == [-0.5]  # 0.75 * -1 + 0.25 * 1
    soft_update(target, source, 0.25)
    assert target.weight.tolist() == [[0.4375, 0.4375]]
    soft_update(target, source, 1.0)
    assert target.bias.tolist() == [1.0]


def test_init_parameters_follows_the_generator_only():
    def weights(seed: int) -> list[torch.Tensor]:
        net = mlp(4, (8,), 2)
        init_parameters(net, torch.Generator().manual_seed(seed))
        return [p.detach().clone() for p in net.parameters()]

    torch.manual_seed(1)
    first = weights(0)
    torch.manual_seed(2)  # the global state does not matter
    assert all(torch.equal(a, b) for a, b in zip(first, weights(0)))
    assert not any(torch.equal(a, b) for a, b in zip(first, weights(1)))
    # nn.Linear's law: |w| and |b| <= 1 / sqrt(fan_in)
    assert first[0].abs().max() <= 0.5 and first[1].abs().max() <= 0.5
    assert first[2].abs().max() <= 1 / math.sqrt(8) and first[3].abs().max() <= 1 / math.sqrt(8)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_building_a_learner_leaves_the_global_random_state_alone(algorithm):
    config = algorithm_config(algorithm, {"hidden": (8, 8)})
    before = torch.random.get_rng_state()
    learners = [ALGORITHMS[algorithm].learner(5, 2, config, 10, torch.Generator().manual_seed(seed))
                for seed in (0, 0, 1)]
    assert torch.equal(torch.random.get_rng_state(), before)
    states = [learner.state_dict()["modules"] for learner in learners]
    flat = [[t for module in state.values() for t in module.values()] for state in states]
    assert all(torch.isfinite(t).all() for t in flat[0])
    assert all(torch.equal(a, b) for a, b in zip(flat[0], flat[1]))  # same seed, same weights
    assert not all(torch.equal(a, b) for a, b in zip(flat[0], flat[2]))
