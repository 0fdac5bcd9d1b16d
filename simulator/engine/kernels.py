"""Compiled inner loops of the step (Numba, cached on disk so the CLI and tests compile once).

Each kernel computes exactly what its NumPy description says; the modules that call them
keep the equations and sources. Kernels run over whole arrays in one pass instead of the
several temporary arrays NumPy would need.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_K_STEP = np.uint64(0xD1B54A32D192ED03)
_TO_UNIT = 1.0 / float(1 << 53)


@njit(cache=True, nogil=True, inline="always")
def _unit(z):
    """SplitMix64 finaliser of a 64-bit key -> uniform in (0, 1) (see streams.py)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z = z ^ (z >> np.uint64(31))
    return (float(z >> np.uint64(11)) + 0.5) * _TO_UNIT


@njit(cache=True, nogil=True)
def mix_uniform(base, agents, k, out):
    """out[i] = uniform of key base + agents[i] * golden + k[i] * step."""
    for i in range(agents.shape[0]):
        out[i] = _unit(base + np.uint64(agents[i]) * _GOLDEN + np.uint64(k[i]) * _K_STEP)
    return out


@njit(cache=True, nogil=True)
def mix_uniform_k0(base, agents, out):
    for i in range(agents.shape[0]):
        out[i] = _unit(base + np.uint64(agents[i]) * _GOLDEN)
    return out


@njit(cache=True, nogil=True)
def mix_uniform_range(base, n, out):
    """Uniforms of agents 0 .. n-1 (the whole population)."""
    for i in range(n):
        out[i] = _unit(base + np.uint64(i) * _GOLDEN)
    return out


@njit(cache=True, nogil=True)
def poisson_icdf(u, lam, out):
    """Smallest n with P(N <= n) >= u, N ~ Poisson(lam) (sequential search)."""
    for i in range(u.shape[0]):
        la = lam[i]
        p = math.exp(-la)
        cdf = p
        n = 0
        ui = u[i]
        while ui > cdf and p > 0.0:
            n += 1
            p = p * la / n
            cdf += p
        out[i] = n
    return out


@njit(cache=True, nogil=True)
def next_segment(segment, u, member, use_member, keys, dest, S, out):
    """Row r = segment + S * member; the first table entry of row r above r + u (linear scan:
    rows have at most a few dozen entries)."""
    for i in range(segment.shape[0]):
        r = segment[i]
        if use_member and member[i]:
            r += S
        key = r + u[i]
        j = r * S
        end = j + S - 1
        while j < end and keys[j] <= key:
            j += 1
        out[i] = dest[j]
    return out


@njit(cache=True, nogil=True)
def transaction_slots(counts, pos, k):
    """For each agent i with counts[i] purchases, write (i, 0..counts[i]-1) into pos, k."""
    t = 0
    for i in range(counts.shape[0]):
        for j in range(counts[i]):
            pos[t] = i
            k[t] = j
            t += 1
    return t


@njit(cache=True, nogil=True)
def member_lift(segment, tier, spendable, since_reward, since_demotion, ladder, ladder_start, ladder_len,
                g, r, half_life, s_status, d_demotion, n_tiers, use_goal, use_rewarded, use_status, out):
    """Product of the members' rate multipliers (rewards.py and tiers.py give the equations):
    goal gradient 1 + g (progress - 1/2), rewarded behaviour 1 + r 2^(-since/h), status
    1 + s tier / (T - 1), demotion 1 - d 2^(-since/h)."""
    for i in range(segment.shape[0]):
        s = segment[i]
        t = tier[i]
        f = 1.0
        if use_goal:
            prog = 1.0
            a = ladder_start[t]
            for j in range(a, a + ladder_len[t]):
                if ladder[j] > spendable[i]:
                    prog = spendable[i] / ladder[j]
                    break
            f *= 1.0 + g[s] * (prog - 0.5)
        if use_rewarded and since_reward[i] < 10_000:
            f *= 1.0 + r[s] * 2.0 ** (-since_reward[i] / half_life[s])
        if use_status:
            if n_tiers > 1:
                f *= 1.0 + s_status[s] * t / (n_tiers - 1)
            if since_demotion[i] < 10_000:
                f *= 1.0 - d_demotion[s] * 2.0 ** (-since_demotion[i] / half_life[s])
        out[i] = f
    return out


# Wichura (1988), Algorithm AS 241 (PPND16): the normal quantile to about 1e-16.
_A = (3.3871328727963666080e0, 1.3314166789178437745e+2, 1.9715909503065514427e+3, 1.3731693765509461125e+4,
      4.5921953931549871457e+4, 6.7265770927008700853e+4, 3.3430575583588128105e+4, 2.5090809287301226727e+3)
_B = (1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2, 5.3941960214247511077e+3,
      2.1213794301586595867e+4, 3.9307895800092710610e+4, 2.8729085735721942674e+4, 5.2264952788528545610e+3)
_C = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0, 3.64784832476320460504e0,
      1.27045825245236838258e0, 2.41780725177450611770e-1, 2.27238449892691845833e-2, 7.74545014278341407640e-4)
_D = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
      1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4, 1.05075007164441684324e-9)
_E = (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0, 2.96560571828504891230e-1,
      2.65321895265761230930e-2, 1.24266094738807843860e-3, 2.71155556874348757815e-5, 2.01033439929228813265e-7)
_F = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
      7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7, 2.04426310338993978564e-15)


@njit(cache=True, nogil=True)
def _poly(c, x):
    return ((((((c[7] * x + c[6]) * x + c[5]) * x + c[4]) * x + c[3]) * x + c[2]) * x + c[1]) * x + c[0]


@njit(cache=True, nogil=True)
def norm_ppf(p):
    """Standard normal quantile (AS 241)."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _poly(_A, r) / _poly(_B, r)
    r = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        val = _poly(_C, r) / _poly(_D, r)
    else:
        r -= 5.0
        val = _poly(_E, r) / _poly(_F, r)
    return -val if q < 0.0 else val


@njit(cache=True, nogil=True)
def norm_ppf_array(p, out):
    for i in range(p.shape[0]):
        out[i] = norm_ppf(p[i])
    return out


@njit(cache=True, nogil=True)
def baskets(counts, segment, basket_mult, mean_s, sigma_s, base, net_factor, pos, gross, spend):
    """Every purchase of the month: agent ``pos``, gross amount ``gross``; net spend per agent.

    The k-th purchase of agent i has z = Phi^-1(u(basket, t, i, k)) and amount
    mean_s * b_i * exp(sigma_s z - sigma_s^2 / 2) (purchases.py)."""
    t = 0
    for i in range(counts.shape[0]):
        c = counts[i]
        if c == 0:
            continue
        s = segment[i]
        mu = mean_s[s] * basket_mult[i]
        sg = sigma_s[s]
        total = 0.0
        for k in range(c):
            u = _unit(base + np.uint64(i) * _GOLDEN + np.uint64(k) * _K_STEP)
            a = mu * math.exp(sg * norm_ppf(u) - 0.5 * sg * sg)
            pos[t] = i
            gross[t] = a
            total += a
            t += 1
        spend[i] = total * net_factor
    return t
