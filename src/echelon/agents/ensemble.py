"""Seeds as a batch axis: K learners of one algorithm trained together as one ensemble.

The members share nothing but the matrix products. Each keeps the initial weights, the noise
and (in the trainer) the batch order and validation split its own seed gives it alone; the
ensemble stacks their weights along a leading axis of size K, evaluates the algorithm's phases
(:class:`echelon.agents.common.Phase`) for every member at once with ``torch.func.vmap`` over
``functional_call``, and steps one optimizer per solo optimizer over the stacked tensors. The
sum of the members' losses has, for each member's weights, exactly that member's gradient, and
Adam is elementwise, so each member follows its solo trajectory; only the rounding of the
batched matrix products differs, which leaves the weights equal to float32 tolerance (the
trainer's tests state it), not bit for bit.

:meth:`LearnerEnsemble.member_state` writes a member back into its own solo learner and returns
that learner's ``state_dict()``, so each member's checkpoint is an ordinary one, loadable by
``AgentPolicy`` and resumable alone or in another ensemble.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, vmap

from echelon.agents.common import Batch, Learner, Terms


class _Networks(nn.Module):
    """The template learner's networks under one root, so that ``functional_call`` can swap
    every member's weights into them; its forward evaluates one phase's terms."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleDict(modules)

    def forward(self, terms: Terms, batch: Batch, noise: dict[str, torch.Tensor]):
        return terms(batch, noise)


class LearnerEnsemble:
    """K learners of one class, stepped together; each member equals its solo training.

    Args:
        learners: Freshly built learners (each from its own seed) or learners whose state was
            loaded from their checkpoints; all of one class and one config, at the same step.

    Raises:
        ValueError: If the learners differ in class, config or step, or are fewer than two.
    """

    def __init__(self, learners: list[Learner]) -> None:
        if len(learners) < 2:
            raise ValueError("an ensemble needs at least two learners")
        template = learners[0]
        if any(type(l) is not type(template) or l.config != template.config for l in learners):
            raise ValueError("the members of an ensemble must share one algorithm and config")
        if len({l.steps for l in learners}) != 1:
            raise ValueError("the members of an ensemble must be at the same step")
        self.learners = learners
        self.template = template
        self.steps = template.steps
        modules = template.modules()
        self._networks = _Networks(modules)
        trained = {id(p) for optimizer in template.optimizers.values()
                   for group in optimizer.param_groups for p in group["params"]}
        self._key = {}  # id of a template parameter -> its key in self.params
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, module in modules.items():
                members = [l.modules()[name] for l in learners]
                for pname, parameter in module.named_parameters():
                    key = f"nets.{name}.{pname}"
                    stacked = torch.stack([m.get_parameter(pname).detach() for m in members])
                    self.params[key] = stacked.requires_grad_(id(parameter) in trained)
                    self._key[id(parameter)] = key
                for bname, _ in module.named_buffers():
                    self.buffers[f"nets.{name}.{bname}"] = torch.stack(
                        [m.get_buffer(bname) for m in members])
        self.optimizers = {name: self._stack_optimizer(name) for name in template.optimizers}
        self.schedules = {name: self._stack_schedule(name) for name in template.schedules}

    @property
    def members(self) -> int:
        return len(self.learners)

    def _stack_optimizer(self, name: str) -> torch.optim.Optimizer:
        solo = [l.optimizers[name] for l in self.learners]
        groups = []
        for group in solo[0].param_groups:
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": [self.params[self._key[id(p)]] for p in group["params"]]})
        stacked = type(solo[0])(groups, **solo[0].defaults)
        for index, group in enumerate(stacked.param_groups):
            for position, parameter in enumerate(group["params"]):
                states = [o.state.get(o.param_groups[index]["params"][position], {}) for o in solo]
                if states[0]:
                    stacked.state[parameter] = {
                        key: _stack_state(key, [s[key] for s in states], parameter.shape)
                        for key in states[0]}
        return stacked

    def _stack_schedule(self, name: str):
        solo = self.template.schedules[name]
        if not isinstance(solo, torch.optim.lr_scheduler.LambdaLR):
            raise ValueError(f"ensembles support LambdaLR schedules, not {type(solo).__name__}")
        optimizer = self.optimizers[name]
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, solo.lr_lambdas)
        schedule.load_state_dict(solo.state_dict())
        for group, solo_group in zip(optimizer.param_groups, self.template.optimizers[name].param_groups,
                                     strict=True):
            group["lr"] = solo_group["lr"]
        return schedule

    def _evaluate(self, terms: Terms, batch: Batch,
                  noise: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every member's terms of one phase: a dict of (K,) tensors."""
        networks = self._networks

        def member(params, buffers, member_batch, member_noise):
            return functional_call(networks, (params, buffers), (terms, member_batch, member_noise))

        return vmap(member)(self.params, self.buffers, batch, noise)

    def _draw(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Each member's noise from its own generator, stacked: (K, ...) per name."""
        draws = [l.draw(Batch(*(t[k] for t in batch))) for k, l in enumerate(self.learners)]
        return {name: torch.stack([d[name] for d in draws]) for name in draws[0]}

    def update(self, batch: Batch) -> list[dict[str, float]]:
        """One update of every member on its own batch (each field (K, B, ...)); each member's
        losses, as its solo learner's ``update`` returns them."""
        noise = self._draw(batch)
        self.steps += 1
        logged: dict[str, torch.Tensor] = {}
        for phase in self.template.phases(self.steps):
            terms = self._evaluate(phase.terms, batch, noise)
            per_member = terms[phase.minimise[0]]
            for name in phase.minimise[1:]:
                per_member = per_member + terms[name]
            for name in phase.optimizers:
                self.optimizers[name].zero_grad(set_to_none=True)
            per_member.sum().backward()
            for name in phase.optimizers:
                self.optimizers[name].step()
                if name in self.schedules:
                    self.schedules[name].step()
            with torch.no_grad():
                for target, source in phase.soft_updates:
                    prefix = f"nets.{target}."
                    for key, value in self.params.items():
                        if key.startswith(prefix):
                            value.lerp_(self.params[f"nets.{source}." + key[len(prefix):]],
                                        self.template.polyak)
            logged.update(terms)
        return _per_member(logged, self.members)

    @torch.no_grad()
    def losses(self, batch: Batch) -> list[dict[str, float]]:
        """Each member's validation losses on its own batch; no generator moves."""
        states = [l.generator.get_state() for l in self.learners]
        try:
            noise = self._draw(batch)
            logged: dict[str, torch.Tensor] = {}
            for phase in self.template.phases(None):
                logged.update(self._evaluate(phase.terms, batch, noise))
            return _per_member(logged, self.members)
        finally:
            for learner, state in zip(self.learners, states, strict=True):
                learner.generator.set_state(state)

    @torch.no_grad()
    def member_state(self, index: int) -> dict:
        """Member ``index``'s ``state_dict()`` in its solo learner's format (weights, optimizer
        moments, schedules, step count), its tensors its own (not views of the stack)."""
        learner = self.learners[index]
        for name, module in learner.modules().items():
            for pname, parameter in module.named_parameters():
                parameter.copy_(self.params[f"nets.{name}.{pname}"][index])
            for bname, buffer in module.named_buffers():
                buffer.copy_(self.buffers[f"nets.{name}.{bname}"][index])
        for name, stacked in self.optimizers.items():
            solo = learner.optimizers[name]
            for group, solo_group in zip(stacked.param_groups, solo.param_groups, strict=True):
                solo_group.update({k: v for k, v in group.items() if k != "params"})
                for parameter, solo_parameter in zip(group["params"], solo_group["params"],
                                                     strict=True):
                    state = stacked.state.get(parameter)
                    if state:
                        solo.state[solo_parameter] = {
                            key: _member_state(value, parameter.shape, index)
                            for key, value in state.items()}
        for name, schedule in self.schedules.items():
            learner.schedules[name].load_state_dict(schedule.state_dict())
        learner.steps = self.steps
        return learner.state_dict()


def _stack_state(key: str, values: list, shape: torch.Size):
    """One optimizer state entry of every member, stacked where it has the parameter's shape
    (moments); shared where it is a step count, which lockstep members have in common."""
    first = values[0]
    if torch.is_tensor(first) and first.shape == shape[1:]:
        return torch.stack(values)
    if any(not (torch.equal(v, first) if torch.is_tensor(v) else v == first) for v in values):
        raise ValueError(f"the members' optimizer state {key!r} differs; they are not in lockstep")
    return first.clone() if torch.is_tensor(first) else first


def _member_state(value, shape: torch.Size, index: int):
    if torch.is_tensor(value) and value.shape == shape:
        return value[index].clone()
    return value.clone() if torch.is_tensor(value) else value


def _per_member(logged: dict[str, torch.Tensor], members: int) -> list[dict[str, float]]:
    names = list(logged)
    if not names:
        return [{} for _ in range(members)]
    rows = torch.stack([logged[name].detach().float().reshape(members) for name in names]).T.tolist()
    return [dict(zip(names, row, strict=True)) for row in rows]
