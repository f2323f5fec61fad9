#!/usr/bin/env python3
"""Writes signals/default_prior.json: the prior progressive_reward uses when
signal.progressive_reward.<v>.prior.file is empty.

It is not fitted on data (no listening data ships with encore); it is the
exact mean and covariance of a small, stated model of how discoveries
stick, chosen to be plausible and to exercise the filter. Fit a real one
from your own output with encore-fit-prior and point prior.file at it.

Model, for a discovery followed for H days (default 60):
  - the user's affinity p for the item ~ Beta(a=1, b=3) (mean 0.25);
  - day 0 is engaged by definition: z_0 = 1 (mean 1, variance 0);
  - day k >= 1 is engaged with probability p * g_k, independently given p,
    where g_k = 0.3 + 0.7 * exp(-(k - 1) / 10): interest fades over about
    ten days to a floor of 30% of the first day's.
Then, with m1 = E[p] = 0.25, m2 = E[p^2] = 0.1, v = Var[p] = 0.0375:
  mu_k      = m1 g_k
  C_kk      = m1 g_k - (m1 g_k)^2
  C_jk      = v g_j g_k                (j != k, both >= 1)
  C_0k      = 0
C is positive definite on days 1..H-1: it is diag(m1 g_k - m2 g_k^2) (all
entries > 0 since g_k <= 1 and m2 < m1) plus the rank-one v g g'.

Usage: make_default_prior.py [H] > signals/default_prior.json
"""
import math
import sys

A, B = 1.0, 3.0


def main():
    h = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    m1 = A / (A + B)
    m2 = A * (A + 1) / ((A + B) * (A + B + 1))
    v = m2 - m1 * m1
    g = [0.0] + [0.3 + 0.7 * math.exp(-(k - 1) / 10.0) for k in range(1, h)]
    mu = [1.0] + [m1 * g[k] for k in range(1, h)]
    cov = [[0.0] * h for _ in range(h)]
    for j in range(1, h):
        for k in range(1, h):
            cov[j][k] = (m1 * g[k] - (m1 * g[k]) ** 2) if j == k else v * g[j] * g[k]
    fmt = lambda x: "%.12g" % x
    out = ['{"horizon_days": %d,' % h]
    out.append(' "source": "encore default prior: exact moments of a Beta(1,3) '
               'affinity x fading daily engagement model (ops/prior/'
               'make_default_prior.py); not fitted on data",')
    out.append(' "mu": [' + ", ".join(fmt(x) for x in mu) + "],")
    out.append(' "cov": [')
    out.append(",\n".join("  [" + ", ".join(fmt(x) for x in row) + "]" for row in cov))
    out.append(" ]")
    out.append("}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
