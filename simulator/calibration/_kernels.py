"""Compiled loops of the log reader (numba): line numbers of CSV records, returns netting.

Both are sequential by nature -- a CSV record's end depends on every quote before it, a
return nets against what earlier returns left -- and run over every row of a log that can
hold ten million, so they are compiled once (``cache=True``) rather than looped in Python.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["argsort_pair", "net_returns", "pair_starts", "scan_records"]


@njit(cache=True, nogil=True)
def scan_records(buf, delim, quote, state, final):  # pragma: no cover - compiled
    """Records of a chunk of CSV bytes, parsed as pyarrow parses them.

    A quote opens a quoted field only at the start of a field; inside one, a doubled quote is
    a quote and line breaks are part of the value. ``\\n``, ``\\r\\n`` and a lone ``\\r`` end a
    record; an empty record (a blank line) is not one. ``state`` (int64[8]) carries the parser
    across chunks: mode, fields so far, bytes of the record, current line, pending ``\\r``,
    line where the record began, whether it has a byte other than space or tab. ``final``:
    the end of the file (an unterminated last record is emitted).

    Returns, per record: the line where it begins (1-based), its number of fields, and
    whether it is blank (spaces and tabs only).
    """
    n = buf.shape[0]
    cap = n // 2 + 2
    out_line = np.empty(cap, np.int64)
    out_fields = np.empty(cap, np.int64)
    out_blank = np.empty(cap, np.bool_)
    k = 0
    mode = state[0]  # 0 field start, 1 unquoted, 2 quoted, 3 quote seen inside quotes
    fields = state[1]
    reclen = state[2]
    line = state[3]
    pending_cr = state[4]
    rec_line = state[5]
    nonspace = state[6]
    for i in range(n):
        c = buf[i]
        if pending_cr == 1:
            pending_cr = 0
            if c == 10:
                continue  # \r\n: one line break, counted at the \r
        if mode == 2:
            if c == quote:
                mode = 3
            elif c == 10:
                line += 1
            elif c == 13:
                line += 1
                pending_cr = 1
            reclen += 1
            nonspace = 1
            continue
        if mode == 3:
            if c == quote:  # "" inside quotes: a literal quote
                mode = 2
                reclen += 1
                continue
            mode = 1
        if c == 10 or c == 13:
            if reclen > 0:
                out_line[k] = rec_line
                out_fields[k] = fields + 1
                out_blank[k] = nonspace == 0
                k += 1
            line += 1
            if c == 13:
                pending_cr = 1
            mode = 0
            fields = 0
            reclen = 0
            nonspace = 0
            rec_line = line
            continue
        reclen += 1
        if c != 32 and c != 9:
            nonspace = 1
        if c == delim:
            fields += 1
            mode = 0
        elif mode == 0:
            mode = 2 if c == quote else 1
    if final and reclen > 0:
        out_line[k] = rec_line
        out_fields[k] = fields + 1
        out_blank[k] = nonspace == 0
        k += 1
        reclen = 0
    state[0] = mode
    state[1] = fields
    state[2] = reclen
    state[3] = line
    state[4] = pending_cr
    state[5] = rec_line
    state[6] = nonspace
    return out_line[:k], out_fields[:k], out_blank[:k]


@njit(cache=True, nogil=True)
def net_returns(cust, day, amount, txn):  # pragma: no cover - compiled
    """Net negative amounts (returns) against the customer's spend.

    Rows are sorted by customer, day and file order. Each return, in that order, takes from
    the customer's purchases on or before its day, most recent first (that day's first) --
    from its own transaction's rows first when ``txn`` (transaction codes, -1: none) says
    which they are -- never taking a purchase below zero. Returns the spend left on each row
    (0 on return rows), the returns netted and the returns with nothing to net against.
    """
    n = amount.shape[0]
    spend = np.empty(n, np.float64)
    for i in range(n):
        spend[i] = amount[i] if amount[i] > 0.0 else 0.0
    netted = 0
    unmatched = 0
    s = 0
    while s < n:
        e = s
        has_return = False
        while e < n and cust[e] == cust[s]:
            if amount[e] < 0.0:
                has_return = True
            e += 1
        if has_return:
            k = s
            for i in range(s, e):
                if not amount[i] < 0.0:
                    continue
                while k < e and day[k] <= day[i]:
                    k += 1
                need = -amount[i]
                took = 0.0
                if txn[i] >= 0:
                    for j in range(k - 1, s - 1, -1):
                        if need <= 0.0:
                            break
                        if txn[j] == txn[i] and spend[j] > 0.0:
                            t = min(need, spend[j])
                            spend[j] -= t
                            need -= t
                            took += t
                for j in range(k - 1, s - 1, -1):
                    if need <= 0.0:
                        break
                    if spend[j] > 0.0:
                        t = min(need, spend[j])
                        spend[j] -= t
                        need -= t
                        took += t
                if took > 0.0:
                    netted += 1
                else:
                    unmatched += 1
        s = e
    return spend, netted, unmatched


@njit(cache=True, nogil=True)
def _counting_pass(keys, nkeys, order):  # pragma: no cover - compiled
    """``order`` stably re-sorted by ``keys[order]`` (integer keys in ``0..nkeys-1``)."""
    counts = np.zeros(nkeys + 1, np.int64)
    for j in range(order.shape[0]):
        counts[keys[order[j]] + 1] += 1
    for k in range(nkeys):
        counts[k + 1] += counts[k]
    out = np.empty(order.shape[0], np.int64)
    for j in range(order.shape[0]):
        i = order[j]
        k = keys[i]
        out[counts[k]] = i
        counts[k] += 1
    return out


@njit(cache=True, nogil=True)
def argsort_pair(primary, nprimary, secondary, nsecondary):  # pragma: no cover - compiled
    """Stable argsort by (``primary``, ``secondary``), both integer keys in ``0..n-1``: two
    counting-sort passes, linear in the rows (ties keep their order: file order)."""
    order = np.arange(primary.shape[0])
    return _counting_pass(primary, nprimary, _counting_pass(secondary, nsecondary, order))


@njit(cache=True, nogil=True)
def pair_starts(a, b):  # pragma: no cover - compiled
    """Positions where (``a``, ``b``) changes in sorted rows: the first row of each group."""
    n = a.shape[0]
    out = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        if i == 0 or a[i] != a[i - 1] or b[i] != b[i - 1]:
            out[k] = i
            k += 1
    return out[:k]
