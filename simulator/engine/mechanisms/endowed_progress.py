"""Endowed progress (Nunes & Dreze 2006, "The Endowed Progress Effect: How Artificial
Advancement Increases Effort", Journal of Consumer Research 32(4): 504-512). In their car-wash
field study a loyalty card needing 10 stamps and given with 2 already stamped was completed by
34% of customers, against 19% for a card needing 8 stamps given with none: the same purchases
to go, but progress that feels begun.

A program with ``rewards.endowed_progress`` = e > 0 starts every new member's card with
bonus stamps worth e times the first reward's price (``goal_t``, the cheapest reward of the
tier or the cash-back threshold) -- stamps that are not points: nothing more can be redeemed,
the goal is raised by as much, so the distance to the reward is unchanged. Until the member's
first reward (``since_reward`` still "never"), the progress that enters the goal gradient
(rewards.py) is the card's

    progress'_i = (spendable_i + e goal_t) / (next_i + e goal_t)

instead of ``spendable_i / next_i``; after a reward the card is an ordinary one. Nunes &
Dreze's 2 stamps out of 8 to go is e = 0.25. The effect acts through the goal gradient only
(its ``g_s``; switched off with it): with g = 0 endowed progress changes nothing, and with
e = 0 (the default) every output is the same, bit for bit, as without the mechanism.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Its section's title in docs/model.md (reporting/model_doc.py finds the module).
TITLE = "Endowed progress"

#: Months since a reward that has not happened (state.NEVER; not imported: state imports the
#: kernels, which inline this module).
_NEVER = 10_000


@njit(cache=True, nogil=True, inline="always")
def perceived(progress, spendable, target, endowed, since_reward):
    """Progress toward ``target`` as an endowed card shows it (module docstring): ``progress``
    itself without endowment (``endowed`` <= 0, the bonus stamps in centipoints), after the
    first reward, or at and above the goal. Inlined by Numba into the fused step."""
    if endowed <= 0.0 or since_reward < _NEVER or progress >= 1.0:
        return progress
    return (spendable + endowed) / (target + endowed)


def perceived_numpy(progress: np.ndarray, spendable: np.ndarray, target: np.ndarray, endowed: np.ndarray,
                    since_reward: np.ndarray) -> np.ndarray:
    """NumPy reference of :func:`perceived` over arrays (the tests compare the two)."""
    on = (endowed > 0.0) & (since_reward >= _NEVER) & (progress < 1.0)
    out = np.asarray(progress, dtype=float).copy()
    out[on] = (spendable[on] + endowed[on]) / (target[on] + endowed[on])
    return out
