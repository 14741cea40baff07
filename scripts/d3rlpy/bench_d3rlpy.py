"""Time d3rlpy 2.8.1's IQL on an echelon dataset file (the peer of benchmarks/bench_train.py).

Runs INSIDE the venv made by ``scripts/d3rlpy/make_venv.sh``:

    .d3rlpy-venv/bin/python scripts/d3rlpy/bench_d3rlpy.py DATASET.h5 --hidden 256 --steps 200

Reads the transitions with h5py (no echelon import), builds d3rlpy's ``MDPDataset`` (terminals
at the horizon), configures IQL with the same sizes as echelon's (two hidden layers of
``--hidden`` units for actor, critics and value, batch ``--batch``, the paper's IQL settings),
builds it, runs 5 warm-up steps, then times ``--steps`` gradient steps of ``fit`` and prints
one JSON line: ``{"d3rlpy_steps_per_second": ..., "steps": ..., "seconds": ...}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import h5py
import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import d3rlpy
    import torch

    torch.set_num_threads(args.threads)
    with h5py.File(args.dataset, "r") as f:
        observations = f["observations"][()].astype(np.float32)
        actions = f["actions"][()].astype(np.float32)
        rewards = f["rewards"][()].astype(np.float32)
        terminals = f["terminations"][()].astype(np.float32)
        timeouts = f["truncations"][()].astype(np.float32)
    dataset = d3rlpy.dataset.MDPDataset(
        observations, actions, rewards, terminals, timeouts,
        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS,  # orders are whole units
    )
    encoder = d3rlpy.models.VectorEncoderFactory(hidden_units=[args.hidden, args.hidden])
    iql = d3rlpy.algos.IQLConfig(
        batch_size=args.batch, gamma=0.99, expectile=0.7, weight_temp=1.0,
        actor_learning_rate=3e-6, critic_learning_rate=3e-6,
        actor_encoder_factory=encoder, critic_encoder_factory=encoder,
        value_encoder_factory=encoder,
    ).create(device=False)
    iql.build_with_dataset(dataset)
    quiet = dict(show_progress=False, logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
                 save_interval=10**9)
    iql.fit(dataset, n_steps=5, n_steps_per_epoch=5, **quiet)
    start = time.perf_counter()
    iql.fit(dataset, n_steps=args.steps, n_steps_per_epoch=args.steps, **quiet)
    seconds = time.perf_counter() - start
    print(json.dumps({"d3rlpy_steps_per_second": args.steps / seconds, "steps": args.steps,
                      "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
