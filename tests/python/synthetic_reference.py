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


# ---- the generator with hierarchy and several hooks ("saepipe.synthetic.v2"), from the
# specification in pipeline/model/synthetic.hpp. With one hook and no hierarchy it is the
# generator above (Synthetic(...).tokens equals tokens(...)).

def normal_pair(h1, h2):
    return np.sqrt(-2.0 * np.log1p(-uniform01(h1))) * np.cos(2.0 * np.pi * uniform01(h2))


def _phi_inverse(p):
    """Phi^-1 by bisection, as the generator does (200 halvings of [-40, 40])."""
    import math
    if p >= 1:
        return math.inf
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class Synthetic:
    """A synthetic store's generator from its manifest "source" and its number of hooks."""

    def __init__(self, src, n_hooks=1):
        self.seed = np.uint64(src["seed"])
        G, D = src["n_features"], src["d_model"]
        self.G, self.D, self.L = G, D, n_hooks
        C = src.get("children", 0)
        q = src.get("child_probability", 0.0)
        self.C, self.q = C, q
        self.child_coefficient = src.get("child_coefficient", "own")
        self.P = G // (C + 1) if C > 0 else 0
        self.parent = np.full(G, -1, dtype=np.int64)
        for p in range(self.P):
            self.parent[self.P + p * C: self.P + (p + 1) * C] = p
        roots = np.flatnonzero(self.parent < 0)
        weight = np.where(roots < self.P, 1.0 + q, 1.0)
        w = src["decay"] ** np.arange(len(roots), dtype=np.float64)
        total = lambda c: (np.minimum(1.0, c * w) * weight).sum()
        lo, hi = 0.0, 1.0
        while total(hi) < src["mean_active"]:
            hi *= 2
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if total(mid) < src["mean_active"]:
                lo = mid
            else:
                hi = mid
        self.prob = np.zeros(G)
        self.prob[roots] = np.minimum(1.0, hi * w)
        child = self.parent >= 0
        self.prob[child] = self.prob[self.parent[child]] * q / max(C, 1)
        self.rho = src.get("correlation", 0.0)
        self.quantile = np.array([_phi_inverse(p) for p in self.prob]) if self.rho > 0 else None
        self.feats = [features(int(self.seed), G, D)]
        s = src.get("hook_similarity", 0.0)
        absent = src.get("hook_absent", 0.0)
        self.hook_linear = src.get("hook_linear", 0.0)
        self.hook_noise = src.get("hook_noise", 0.0)
        self.lin = [None]
        j = np.arange(D, dtype=np.uint64)[None, :]
        for l in range(1, n_hooks):
            a = (np.uint64(l * G) + np.arange(G, dtype=np.uint64))[:, None]
            h = normal_pair(counter_hash(self.seed, 6, a, 2 * j), counter_hash(self.seed, 6, a, 2 * j + np.uint64(1)))
            h /= np.linalg.norm(h, axis=1, keepdims=True)
            v = np.sqrt(s) * self.feats[0] + np.sqrt(1 - s) * h
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            gone = uniform01(counter_hash(self.seed, 9, np.uint64(l), np.arange(G, dtype=np.uint64))) < absent
            v[gone] = 0.0
            self.feats.append(v)
            if self.hook_linear > 0:
                e = np.arange(D * D, dtype=np.uint64)
                r = normal_pair(counter_hash(self.seed, 8, np.uint64(l), 2 * e),
                                counter_hash(self.seed, 8, np.uint64(l), 2 * e + np.uint64(1)))
                self.lin.append((r / np.sqrt(D)).reshape(D, D))
            else:
                self.lin.append(None)

    def codes(self, first, n):
        """active [n, G] bool and coef [n, G] (0 where inactive) of tokens [first, first + n)."""
        G, seed = self.G, self.seed
        t = np.arange(first, first + n, dtype=np.uint64)[:, None]
        i = np.arange(G, dtype=np.uint64)[None, :]
        if self.rho > 0:
            g = i // np.uint64(8)
            z = normal_pair(counter_hash(seed, 4, t, 2 * g), counter_hash(seed, 4, t, 2 * g + np.uint64(1)))
            e = normal_pair(counter_hash(seed, 5, t, 2 * i), counter_hash(seed, 5, t, 2 * i + np.uint64(1)))
            active = np.sqrt(self.rho) * z + np.sqrt(1 - self.rho) * e < self.quantile[None, :]
        else:
            active = uniform01(counter_hash(seed, 2, t, i)) < self.prob[None, :]
        if self.C > 0:
            P, C = self.P, self.C
            v = uniform01(counter_hash(seed, 10, t, np.arange(P, dtype=np.uint64)[None, :]))  # [n, P]
            pick = np.minimum(C - 1, np.floor(v / self.q * C).astype(np.int64)) if self.q > 0 else np.zeros_like(v, dtype=np.int64)
            on = active[:, :P] & (v < self.q)
            active[:, P:P + P * C] = False
            rows, ps = np.nonzero(on)
            active[rows, P + ps * C + pick[rows, ps]] = True
        coef = uniform01(counter_hash(seed, 3, t, i)) * active
        if self.C > 0 and self.child_coefficient == "parent":  # a child moves with its parent
            kids = np.arange(self.P * self.C)
            coef[:, self.P + kids] = coef[:, kids // self.C] * active[:, self.P + kids]
        return active, coef

    def tokens(self, first, n):
        """[x per hook] ([n, D] each) and the dominant feature per token (G: none)."""
        active, coef = self.codes(first, n)
        xs = [coef @ self.feats[0]]
        for l in range(1, self.L):
            x = coef @ self.feats[l]
            if self.lin[l] is not None:
                x = x + self.hook_linear * (xs[0] @ self.lin[l])
            if self.hook_noise > 0:
                t = np.arange(first, first + n, dtype=np.uint64)[:, None]
                j = np.uint64(l * self.D) + np.arange(self.D, dtype=np.uint64)[None, :]
                x = x + self.hook_noise * normal_pair(counter_hash(self.seed, 7, t, 2 * j),
                                                      counter_hash(self.seed, 7, t, 2 * j + np.uint64(1)))
            xs.append(x)
        dominant = np.where(active.any(axis=1), np.argmax(np.where(active, coef, -1.0), axis=1), self.G)
        return xs, dominant
