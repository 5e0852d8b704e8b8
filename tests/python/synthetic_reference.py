"""Independent NumPy reimplementation of saepipe's synthetic source (toy model of
superposition) from its written specification in pipeline/model/synthetic.hpp and
pipeline/core/counter_rng.hpp: counter hash = splitmix64 chained over (seed, a, b, c)."""
import numpy as np

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
GOLD = np.uint64(0x9E3779B97F4A7C15)
C1 = np.uint64(0xBF58476D1CE4E5B9)
C2 = np.uint64(0x94D049BB133111EB)


def splitmix64(z):
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + GOLD
        z = (z ^ (z >> np.uint64(30))) * C1
        z = (z ^ (z >> np.uint64(27))) * C2
    return z ^ (z >> np.uint64(31))


def counter_hash(seed, a, b, c):
    s = splitmix64(np.uint64(seed))
    return splitmix64(splitmix64(splitmix64(s ^ np.uint64(a)) ^ np.asarray(b, dtype=np.uint64)) ^ np.asarray(c, dtype=np.uint64))


def uniform01(h):
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def features(seed, n_features, d_model):
    i = np.arange(n_features, dtype=np.uint64)[:, None]
    j = np.arange(d_model, dtype=np.uint64)[None, :]
    u1 = uniform01(counter_hash(seed, 1, i, 2 * j))
    u2 = uniform01(counter_hash(seed, 1, i, 2 * j + np.uint64(1)))
    g = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def probabilities(n_features, decay, mean_active):
    w = decay ** np.arange(n_features, dtype=np.float64)
    lo, hi = 0.0, 1.0
    while np.minimum(1.0, hi * w).sum() < mean_active:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.minimum(1.0, mid * w).sum() < mean_active:
            lo = mid
        else:
            hi = mid
    return np.minimum(1.0, hi * w)


def tokens(seed, first, n, feats, probs):
    """Rows for tokens [first, first+n) and the dominant feature id per token (n_features: none)."""
    t = np.arange(first, first + n, dtype=np.uint64)[:, None]
    i = np.arange(len(probs), dtype=np.uint64)[None, :]
    active = uniform01(counter_hash(seed, 2, t, i)) < probs[None, :]
    coef = uniform01(counter_hash(seed, 3, t, i)) * active
    x = coef @ feats
    dominant = np.where(active.any(axis=1), np.argmax(np.where(active, coef, -1.0), axis=1), len(probs))
    return x, dominant
