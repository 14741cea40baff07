"""Train d3rlpy 2.8.1's IQL or BC on transitions prepared by benchmarks/parity_d3rlpy.py.

Runs INSIDE the venv made by ``scripts/d3rlpy/make_venv.sh`` (no echelon import):

    .d3rlpy-venv/bin/python scripts/d3rlpy/train_d3rlpy.py SPLIT.npz --algo iql --seed 0 \
        --steps 4220 --out policy.pt

``SPLIT.npz`` holds one seed's training split as echelon trains on it: raw ``observations``,
``actions`` (orders), ``rewards``, ``terminals`` and ``timeouts``, and echelon's preprocessing:
``obs_mean``, ``obs_std`` (the standardisation) and ``action_low``, ``action_high`` (the env's
bounds). ``--actions bounds`` scales actions to [-1, 1] over those bounds, as echelon does;
``--actions data`` lets d3rlpy fit its min-max scaler to the logged actions, its usual practice.

The settings are echelon's ``default`` agent settings: two hidden layers of ``--hidden`` units,
Adam at ``--lr``, batch ``--batch``, gamma 0.99, and for IQL expectile 0.7, temperature 3.0,
weights clipped at 100, target rate 0.005, the actor's rate decayed to 0 by a cosine over the
``--steps`` gradient steps. The greedy policy (scalers included) is saved as TorchScript at
``--out``; one JSON line reports the wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("split")
    parser.add_argument("--algo", choices=("iql", "bc"), required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--actions", choices=("bounds", "data"), default="bounds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import d3rlpy
    import torch

    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)  # d3rlpy draws from the global generators; this process is its own
    split = np.load(args.split)
    dataset = d3rlpy.dataset.MDPDataset(
        split["observations"].astype(np.float32), split["actions"].astype(np.float32),
        split["rewards"].astype(np.float32), split["terminals"].astype(np.float32),
        split["timeouts"].astype(np.float32),
        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS,
    )
    observation_scaler = d3rlpy.preprocessing.StandardObservationScaler(
        mean=split["obs_mean"].astype(np.float32), std=split["obs_std"].astype(np.float32))
    if args.actions == "bounds":
        action_scaler = d3rlpy.preprocessing.MinMaxActionScaler(
            minimum=split["action_low"].astype(np.float32),
            maximum=split["action_high"].astype(np.float32))
    else:
        action_scaler = d3rlpy.preprocessing.MinMaxActionScaler()  # fitted to the logged orders
    encoder = d3rlpy.models.VectorEncoderFactory(hidden_units=[args.hidden, args.hidden])
    common = dict(batch_size=args.batch, observation_scaler=observation_scaler,
                  action_scaler=action_scaler)
    if args.algo == "iql":
        cosine = d3rlpy.optimizers.AdamFactory(
            lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=args.steps))
        algo = d3rlpy.algos.IQLConfig(
            gamma=0.99, expectile=0.7, weight_temp=3.0, max_weight=100.0, tau=0.005,
            actor_learning_rate=args.lr, critic_learning_rate=args.lr,
            actor_optim_factory=cosine, actor_encoder_factory=encoder,
            critic_encoder_factory=encoder, value_encoder_factory=encoder, **common,
        ).create(device=False)
    else:
        algo = d3rlpy.algos.BCConfig(
            learning_rate=args.lr, policy_type="deterministic", encoder_factory=encoder, **common,
        ).create(device=False)
    quiet = dict(show_progress=False, logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
                 save_interval=10**9)
    start = time.perf_counter()
    algo.fit(dataset, n_steps=args.steps, n_steps_per_epoch=args.steps, **quiet)
    seconds = time.perf_counter() - start
    algo.save_policy(args.out)
    print(json.dumps({"algo": args.algo, "seed": args.seed, "steps": args.steps,
                      "seconds": seconds, "actions": args.actions}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
