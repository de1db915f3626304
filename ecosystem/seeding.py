"""Every random choice derives from (run seed, cycle, node, stream), wherever the node is computed.

A `Stream` names what a random draw is for (the traffic, the exchange, the poison...), so that two
kinds of draw never share their random numbers.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    init = 0
    traffic = 1
    generate = 2
    exchange = 3
    poison = 4
    own_data = 5
    finetune = 6
    pretrain = 7
    align = 8
    evaluation = 9
    bases = 10
    midtrain = 11
    stories = 12


def rng(seed: int, cycle: int, node: int, stream: Stream, *extra: int) -> np.random.Generator:
    return np.random.default_rng(_entropy(seed, cycle, node, stream, *extra))


def torch_seed(seed: int, cycle: int, node: int, stream: Stream, *extra: int) -> int:
    state = np.random.SeedSequence(_entropy(seed, cycle, node, stream, *extra)).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def _entropy(*parts: int) -> list[int]:
    # SeedSequence takes non-negative integers: shift so that -1 ("no node") is valid too.
    return [int(part) + 1 for part in parts]
