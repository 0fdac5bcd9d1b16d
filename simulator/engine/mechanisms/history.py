"""A program already running at the start: who its members are, since when, and the points
they hold with the months they were earned in.

A baseline such as the current cagnotte has run ``baseline_age_months`` (A) before the first
simulated month. Its members at the start are drawn as :mod:`enrolment` says
(``P(member_i) = 1 - (1 - p_i)^A``, ``p_i`` the monthly join probability). Each member's
join month is the first success of that monthly chance, truncated to the A months:

    P(j_i = -A + k | member) = (1 - p_i)^k p_i / (1 - (1 - p_i)^A),   k = 0 .. A-1

(by inverse CDF: ``k = floor(ln(1 - u (1 - (1 - p_i)^A)) / ln(1 - p_i))``). The enrolment month
is ``j_i``, so fees fall due on the member's own anniversaries (first bill at
``j_i + trial``, then every fee period).

The balance at the start is the outcome of the member's history under the program's own
rules, month by month from ``j_i`` to -1, so that the balance carries the earn month of every
batch and the first simulated months expire, redeem and convert like any later month (a
balance stamped as all earned long ago would expire whole in month 1). Each history month
m, with the calendar month of ``start + m``:

1. in the join month, the welcome bonus;
2. purchases ``n ~ Poisson(rate_s m_i season(m))`` and baskets
   ``a = mean_s b_i exp(sigma_s z - sigma_s^2 / 2)`` as in :mod:`purchases`; points per basket
   of at least the minimum order, ``round(ppu * a * net * category factor * earn multiplier
   of the first tier)`` (:mod:`points`), capped per month; the first-purchase bonus at the
   first month with a purchase, the birthday bonus in the birthday month;
3. redemption of the spendable balance (points earned up to ``pending`` months before, less
   those consumed): cash-back converts whole blocks of the threshold; a catalogue member who
   affords the cheapest reward redeems, with probability ``redemption_propensity_s``, the
   dearest reward of the first tier the balance affords (:mod:`rewards`);
4. expiry at the end of the month by the program's rule (:mod:`expiry`), oldest first;
5. the month's snapshot of cumulative earned points (:mod:`simulator.engine.state`).

The member's segment in each history month is drawn backwards from its segment at the start
along the time-reversed monthly chain of members (:func:`transitions.reversed_matrix`,
``P*[i, j] = pi_j P[j, i] / pi_i``): a customer who has lapsed today was, most likely, active
some months ago and may still hold the points of that time. Its own rate and basket
multipliers are those at the start. Simplifications, stated: no behavioural lifts, no tiers,
no referrals in the history; it is the program's steady state for customers like today's, not
a record of the past. Draws come from their own
streams (``init.join``, ``init.history.*``, period = months before the start), the same in
both runs, so the design and the baseline start from the same balances.
"""

from __future__ import annotations

import numpy as np

from simulator.engine import kernels
from simulator.engine.compiled import CENTI, CompiledMarket, CompiledProgram
from simulator.engine.mechanisms import transitions
from simulator.engine.state import RunState, lazy_zeros

#: Streams of the history (period = months before the start, 1 .. A).
STREAMS = ("init.join", "init.history.purchases", "init.history.basket", "init.history.redemption",
           "init.history.segment")


def join_months(p: np.ndarray, age: int, u: np.ndarray) -> np.ndarray:
    """Join month (-age .. -1) of members with monthly join probability ``p`` (module
    docstring), by inverse CDF of ``u``."""
    out = np.full(p.shape, -age, dtype=np.int64)  # a sure joiner (p >= 1) joins in the first month
    mid = (p > 0) & (p < 1)  # (p = 0 cannot be a member)
    if mid.any():
        q = 1.0 - p[mid]
        k = np.floor(np.log1p(-u[mid] * (1.0 - q ** age)) / np.log(q))
        out[mid] = -age + np.clip(k, 0, age - 1).astype(np.int64)
    return out


def first_bill(join: np.ndarray, program: CompiledProgram) -> np.ndarray:
    """The first fee due at or after month 0: ``j + trial`` then every fee period."""
    due = join + program.trial_months
    late = due < 0
    periods = np.ceil(-due[late] / program.fee_months).astype(np.int64)
    due[late] = due[late] + periods * program.fee_months
    return due


def replay(program: CompiledProgram, market: CompiledMarket, streams, run: RunState, members: np.ndarray, join: np.ndarray,
           P: np.ndarray, rate_mult: np.ndarray, basket_mult: np.ndarray, birthday: np.ndarray, start_month: int,
           age: int) -> None:
    """Each member's history (module docstring), into ``run`` (a RunState): cumulative earned
    and consumed points at the start, the snapshots of earned at the end of months -1 ..
    -(ring-1) (every member is given a snapshot row) and whether the first-purchase bonus is
    still pending."""
    n = members.shape[0]
    months = np.arange(-age, 0)
    cal = (start_month - 1 + months) % 12  # 0-based calendar month of each history month
    season = market.season[cal]
    keys = np.array([[int(streams.stream_base(name, int(-m))) for name in STREAMS[1:]] for m in months],
                    dtype=np.uint64)
    ladder = np.sort(program.prices[program.eligible[0]]).astype(np.int64) if len(program.prices) else np.zeros(0, np.int64)
    goal = int(program.goal[0])
    expiry = (program.expiry, program.expiry_months, program.expiry_month, program.expiry_min_age)
    earned = np.zeros(n, dtype=np.int64)
    consumed = np.zeros(n, dtype=np.int64)
    pending = np.zeros(n, dtype=np.bool_)
    need = np.zeros(run.member.shape[0], dtype=bool)
    need[members] = True
    run.give_rows(need)
    past = np.cumsum(transitions.reversed_matrix(P), axis=1)
    kernels._threaded(kernels.opening_history, n, None, members, join + age, run.segment, past, rate_mult, basket_mult,
                      birthday, market.rate, season, cal + 1, market.basket_mean, market.basket_sigma, market.net_factor,
                      float(program.ppu), int(program.rounding), float(program.min_order),
                      float(program.category_factor), float(program.earn_mult[0]), int(program.cap_month),
                      int(program.bonus_enrolment), int(program.bonus_first), int(program.bonus_birthday),
                      int(program.cashback_threshold), ladder, goal, market.response["redemption_propensity"],
                      int(program.pending_months), np.array(expiry, dtype=np.int64), keys, age, earned, consumed,
                      run.snap, run.row, pending)
    run.earned[members] = earned
    run.consumed[members] = consumed
    run.first_pending[members] = pending


def convert(run: RunState, old: CompiledProgram, new: CompiledProgram, t: int, keep_dates: bool) -> tuple[int, int]:
    """A migration at the opening of month ``t``: every balance O_i of the old program becomes
    ``floor(O_i v_old / v_new)`` whole points of the new one (v: value per point), at value.
    With ``keep_dates`` the new points keep the earn months of the old: the new points
    outstanding from batches earned up to month m are ``floor(O_i(m) v_old / v_new)``, O_i(m)
    the old points outstanding from batches up to m (oldest first); otherwise the conversion is
    a new issue, every new point dated in month t. The design's ring of snapshots replaces the
    old one. Returns (old points converted, new points issued), in hundredths."""
    factor = old.value_per_point / new.value_per_point

    def at_value(points: np.ndarray) -> np.ndarray:
        return (np.floor(points / CENTI * factor) * CENTI).astype(np.int64)

    # points credited at this month's opening (a referred customer's welcome bonus) have no
    # snapshot row yet (the step gives them one): give it now, or their dates would be written
    # through row -1 into another agent's history
    run.give_rows(run.earned != 0)
    out = run.outstanding()
    holders = np.flatnonzero(out > 0)
    old_points = out[holders]
    new_points = at_value(old_points)
    L, L_old = new.ring, run.snap.shape[0]
    earned, consumed = run.earned[holders], run.consumed[holders]
    # the new ring, written before the conversion while the old one still dates the points:
    # nothing outstanding is older than its month's value (consumed, for a holder its earned
    # before the conversion), plus the converted points of batches up to that month
    snap = lazy_zeros((L, run.earned.shape[0]), np.uint32)
    has = np.flatnonzero(run.row >= 0)
    floor = run.consumed[has]
    floor[np.isin(has, holders, assume_unique=True)] = run.earned[has][np.isin(has, holders, assume_unique=True)]
    snap[:, run.row[has]] = floor.astype(np.uint32)[None, :]
    rows = run.row[holders]
    for b in range(1, L):
        if keep_dates and b < L_old:
            dated = at_value(np.maximum(run.earned_until(t, b, holders) - consumed, 0))
            snap[(t - b) % L, rows] = (earned + dated).astype(np.uint32)
    run.debit(old_points, holders, "redeemed")
    run.credit(new_points, holders, "issued")
    run.reset_points_window(new, snap)
    return int(old_points.sum()), int(new_points.sum())
