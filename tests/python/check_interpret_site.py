#!/usr/bin/env python3
"""Checks what the interpret site SHOWS in a browser against the stats files read with h5py.

  check_interpret_site.py plan RUN_DIR              prints "NAME PAGE" lines: the pages to dump
  check_interpret_site.py check RUN_DIR DUMP_DIR    checks DUMP_DIR/NAME.html (the DOM after scripts
                                                    ran, from chromium --dump-dom) for each planned page

The reference is independent of saepipe: features.h5 / examples.h5 / summary.json through h5py
and json, the sort and search semantics re-implemented here, token text decoded from the model's
vocab.json by this script (GPT-2's byte alphabet), exit 1 with every failed check printed.
"""
import html.parser
import json
import urllib.parse
import math
import os
import re
import sys

import h5py
import numpy as np


# ---- a small DOM from the dumped HTML ----
class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def find_all(self, tag=None, cls=None, **attrs):
        out = []
        for n in self.walk():
            if tag and n.tag != tag:
                continue
            if cls and cls not in n.attrs.get("class", "").split():
                continue
            if any(n.attrs.get(k.replace("_", "-")) != v for k, v in attrs.items()):
                continue
            out.append(n)
        return out

    def by_id(self, i):
        for n in self.walk():
            if n.attrs.get("id") == i:
                return n
        return None


VOID = {"meta", "link", "br", "img", "input", "hr", "col", "area", "base", "source", "wbr"}


class Builder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", [], None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(path):
    b = Builder()
    b.feed(open(path, encoding="utf-8").read())
    return b.root


# ---- reference data ----
FAILED = []


def check(cond, what):
    if cond:
        print("ok:", what)
    else:
        print("FAIL:", what)
        FAILED.append(what)


def close(a, b, rel=2e-3, tol=1e-6):
    return abs(float(a) - float(b)) <= tol + rel * abs(float(b))


def gpt2_byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def visible(s):
    out = []
    for ch in s:
        o = ord(ch)
        out.append("↵" if ch == "\n" else "⇥" if ch == "\t" else chr(0x2400 + o) if o < 0x20 else "␡" if o == 0x7F else ch)
    return "".join(out)


class Ref:
    def __init__(self, run):
        self.run = run
        self.summary = json.load(open(f"{run}/stats/summary.json"))
        with h5py.File(f"{run}/stats/features.h5", "r") as f:
            self.f = {k: f[k][...] for k in f.keys()}
            self.attrs = dict(f.attrs)
        self.F = int(self.attrs["d_sae"])
        self.ex = None
        if os.path.exists(f"{run}/stats/examples.h5"):
            with h5py.File(f"{run}/stats/examples.h5", "r") as e:
                self.ex = {g: {k: e[g][k][...] for k in e[g].keys()} for g in ("top", "interval")}
                self.ex_attrs = dict(e.attrs)
        self.gt = "gt_match_index" in self.f
        self.vocab = None
        manifest = json.load(open(f"{run}/activations/manifest.json"))
        src = manifest.get("source", {})
        # A GGUF model holds its vocabulary inside: the test writes it as a vocab.json (with gguf-py)
        # and names it in SAEPIPE_SITE_VOCAB.
        vocab = os.environ.get("SAEPIPE_SITE_VOCAB") or os.path.join(src.get("model", ""), "vocab.json")
        if src.get("type") == "model" and os.path.exists(vocab):
            dec = gpt2_byte_decoder()
            v = json.load(open(vocab, encoding="utf-8"))
            self.vocab = {i: bytes(dec[c] for c in tok) for tok, i in v.items()}

    def token_text(self, t):  # the token as the page shows it
        if self.vocab is None or t not in self.vocab:
            return f"⟨{t}⟩"
        return self.vocab[t].decode("utf-8", errors="replace")

    def order(self, key, desc):
        vals = {"feature": np.arange(self.F), "density": self.f["density"], "max": self.f["max_activation"],
                "mean": self.f["mean_activation"], "fires": self.f["fire_count"]}[key]
        idx = list(range(self.F))
        # The page sorts by value then by id ascending (JavaScript sort with a tie-break).
        return sorted(idx, key=lambda i: ((-1 if desc else 1) * float(vals[i]), i))

    def flags(self, i):
        out = []
        if self.f["dead"][i]:
            out.append("dead")
        if "dense" in self.f and self.f["dense"][i]:
            out.append("dense")
        if "ultralow" in self.f and self.f["ultralow"][i]:
            out.append("ultra-low")
        return " ".join(out)


def plan(ref):
    pages = [("index_default", "index.html"),
             ("index_density", "index.html#sort=density&dir=desc"),
             ("index_max_p2", "index.html#sort=max&dir=asc&per=50&page=2"),
             ("index_all", "index.html?sort=feature&dir=asc&per=0"),
             ("index_dead", "index.html#filter=dead&per=0")]
    q = search_term(ref)
    pages.append(("index_q", f"index.html#q={q}&per=0"))
    qt = text_term(ref)
    if qt is not None:
        pages.append(("index_qtext", f"index.html#q={urllib.parse.quote(qt.upper())}&per=0"))
        pages.append(("index_top", "index.html#sort=top&dir=asc&per=0"))
    for f in feature_pages(ref):
        pages.append((f"feature_{f}", f"features/{f}.html"))
    return pages


def search_term(ref):
    if ref.gt:  # a true feature matched by several latents, if any
        g, counts = np.unique(ref.f["gt_match_index"], return_counts=True)
        return int(g[np.argmax(counts)])
    return 3


def top_text(ref, f):
    """The text of latent f's top example token (what the index searches), or None."""
    if ref.ex is None or ref.ex["top"]["row"][f, 0] < 0:
        return None
    return ref.token_text(int(ref.ex["top"]["ctx_tokens"][f, 0, int(ref.ex_attrs["context_before"])]))


def text_term(ref):
    """A search by token text (tokenized stores): the commonest run of 2+ ASCII letters among
    the latents' top tokens that not every latent shares, searched in upper case (the search
    ignores case)."""
    if ref.vocab is None or ref.ex is None:
        return None
    counts = {}
    for f in range(ref.F):
        t = top_text(ref, f)
        for w in set(m.lower() for m in re.findall(r"[A-Za-z]{2,}", t or "")):
            counts[w] = counts.get(w, 0) + 1
    words = sorted((c, w) for w, c in counts.items() if c < ref.F)
    return words[-1][1] if words else None


def feature_pages(ref):
    fs = [0, ref.F - 1, int(np.argmax(ref.f["density"]))]
    dead = np.flatnonzero(ref.f["dead"])
    if len(dead):
        fs.append(int(dead[0]))
    return sorted(set(fs))


# ---- the index ----
def table_rows(dom):
    body = dom.by_id("features").find_all("tbody")[0]
    rows = []
    for tr in body.find_all("tr"):
        cells = {td.attrs["class"]: td for td in tr.find_all("td")}
        rows.append((int(tr.attrs["data-f"]), cells))
    return rows


def check_rows(ref, rows, name, exact_values=True):
    bad = []
    for f, c in rows:
        want = {"density": ref.f["density"][f], "max": ref.f["max_activation"][f], "mean": ref.f["mean_activation"][f]}
        for k, v in want.items():
            if not close(c[k].text().strip(), v):
                bad.append(f"latent {f} {k} shows {c[k].text().strip()} but features.h5 has {v}")
        if int(c["fires"].text()) != int(ref.f["fire_count"][f]):
            bad.append(f"latent {f} fires {c['fires'].text()} != {ref.f['fire_count'][f]}")
        if c["flags"].text() != ref.flags(f):
            bad.append(f"latent {f} flags '{c['flags'].text()}' != '{ref.flags(f)}'")
        if ref.gt:
            if int(c["gt"].text()) != int(ref.f["gt_match_index"][f]) or not close(c["gtcos"].text(), ref.f["gt_match_cosine"][f]):
                bad.append(f"latent {f} true feature {c['gt'].text()} ({c['gtcos'].text()})")
        a = c["feature"].find_all("a")
        if not a or a[0].attrs.get("href") != f"features/{f}.html":
            bad.append(f"latent {f} has no link to features/{f}.html")
        if ref.ex is not None and "top" in c:
            t = ref.ex["top"]
            shown = c["top"].text()
            if t["row"][f, 0] < 0:
                want_tok = ""
            else:
                want_tok = visible(ref.token_text(int(t["ctx_tokens"][f, 0, int(ref.ex_attrs["context_before"])])))
            if shown != want_tok:
                bad.append(f"latent {f} top token '{shown}' != '{want_tok}'")
    check(not bad, f"{name}: every shown value equals features.h5 ({len(rows)} rows)" + ("" if not bad else ": " + "; ".join(bad[:5])))


def check_index(ref, dumps):
    d = parse(f"{dumps}/index_default.html")
    rows = table_rows(d)
    order = ref.order("density", True)
    check(len(rows) == min(100, ref.F), f"default view renders {len(rows)} rows (a page of 100)")
    check([f for f, _ in rows] == order[:100], "default view: latents by density, highest first")
    check(d.by_id("count").text() == f"{ref.F} of {ref.F} latents", f"count line: '{d.by_id('count').text()}'")
    check(d.by_id("pageinfo").text() == f"page 1 of {math.ceil(ref.F / 100)}", f"page line: '{d.by_id('pageinfo').text()}'")
    check_rows(ref, rows, "default view")
    th = [t for t in d.by_id("features").find_all("th") if "sorted" in t.attrs.get("class", "")]
    check(len(th) == 1 and th[0].attrs.get("data-k") == "density" and "desc" in th[0].attrs["class"],
          "the density header is marked as the sorted column")

    # Summary: the values summary.json holds.
    summ = {tr.attrs["data-key"]: tr.find_all("td")[0].text() for tr in d.by_id("summary").find_all("tr")}
    for k in ("fvu", "l0", "dead_fraction", "mmcs", "ce_loss_recovered", "kl_div"):
        if k in ref.summary:
            check(k in summ and close(summ[k], ref.summary[k], rel=1e-5), f"summary shows {k} = {summ.get(k)} ({ref.summary[k]})")
    check(len(d.find_all("rect")) > 0, "the density histogram has bars")

    d = parse(f"{dumps}/index_density.html")
    check([f for f, _ in table_rows(d)] == order[:100], "#sort=density&dir=desc: highest density first")

    d = parse(f"{dumps}/index_max_p2.html")
    rows = table_rows(d)
    want = ref.order("max", False)[50:100]
    check([f for f, _ in rows] == want, "#sort=max&dir=asc&per=50&page=2: rows 51-100 by max activation, lowest first")
    check(d.by_id("pageinfo").text() == f"page 2 of {math.ceil(ref.F / 50)}", "page 2 is shown")
    vals = [float(c["max"].text()) for _, c in rows]
    check(all(a <= b for a, b in zip(vals, vals[1:])), "shown max activations ascend")

    d = parse(f"{dumps}/index_all.html")
    rows = table_rows(d)
    check([f for f, _ in rows] == list(range(ref.F)), f"?sort=feature&per=0: all {ref.F} latents in id order")
    check_rows(ref, rows, "all rows")

    d = parse(f"{dumps}/index_dead.html")
    dead = [f for f in ref.order("density", True) if ref.f["dead"][f]]
    check([f for f, _ in table_rows(d)] == dead, f"#filter=dead: exactly the {len(dead)} dead latents")

    q = search_term(ref)
    d = parse(f"{dumps}/index_q.html")
    want = [f for f in order if f == q or (ref.gt and int(ref.f["gt_match_index"][f]) == q)]
    got = [f for f, _ in table_rows(d)]
    check(got == want, f"#q={q}: latent {q} and the latents matched to true feature {q} ({got})")
    check(d.by_id("count").text() == f"{len(want)} of {ref.F} latents", f"#q={q}: count line '{d.by_id('count').text()}'")

    qt = text_term(ref)
    if ref.vocab is not None and ref.ex is not None:
        check(qt is not None, "a token text to search for")
    if qt is not None:
        d = parse(f"{dumps}/index_qtext.html")
        want = [f for f in order if qt in (top_text(ref, f) or "").lower()]
        got = [f for f, _ in table_rows(d)]
        check(len(want) > 0 and got == want,
              f"#q={qt.upper()}: the {len(want)} latents whose top token holds '{qt}' in any case ({len(got)} shown)")
        # Sorted by top token (the page's localeCompare, which Python cannot reproduce in full):
        # every latent once, the shown tokens those of examples.h5 (check_rows), equal tokens
        # together and in id order, and the tokens made of lower-case ASCII letters after at most
        # one space (on which the collation is the code points' order) in that order.
        d = parse(f"{dumps}/index_top.html")
        rows = table_rows(d)
        check(sorted(f for f, _ in rows) == list(range(ref.F)), f"#sort=top: every latent once ({len(rows)} rows)")
        check_rows(ref, rows, "#sort=top")
        shown = [(c["top"].text(), f) for f, c in rows]
        first = {}
        for i, (t, f) in enumerate(shown):
            first.setdefault(t, i)
        grouped = all(first[t] == i or shown[i - 1][0] == t for i, (t, _) in enumerate(shown))
        ties = all(a[1] < b[1] for a, b in zip(shown, shown[1:]) if a[0] == b[0])
        letters = [t for t, _ in shown if re.fullmatch(r" ?[a-z]+", t)]
        check(grouped and ties and letters == sorted(letters),
              f"#sort=top: equal tokens together in id order ({grouped}, {ties}), "
              f"{len(set(letters))} lower-case words in order ({letters == sorted(letters)})")


# ---- a feature page ----
def example_slots(ref, set_name, f):
    s = ref.ex[set_name]
    return [e for e in range(s["row"].shape[1]) if s["row"][f, e] >= 0]


def check_context(ref, td, s, f, e, mx, bad):
    toks = s["ctx_tokens"][f, e]
    acts = s["ctx_acts"][f, e]
    before = int(ref.ex_attrs["context_before"])
    want_text = "".join(visible(ref.token_text(int(t))) for t in toks if t >= 0)
    if td.text() != want_text:
        bad.append(f"latent {f} example {e}: text {td.text()!r} != {want_text!r}")
    spans = td.find_all("span")
    if any(c for c in td.walk() if c.tag != "span"):
        bad.append(f"latent {f} example {e}: an element other than span inside the context (escaping?)")
    active = [i for i, t in enumerate(toks) if t >= 0 and acts[i] > 0]
    shown_active = [sp for sp in spans if "a" in sp.attrs.get("class", "").split()]
    if len(shown_active) != len(active):
        bad.append(f"latent {f} example {e}: {len(shown_active)} highlighted tokens, {len(active)} active")
    for sp, i in zip(shown_active, active):
        if sp.text() != visible(ref.token_text(int(toks[i]))) or not close(sp.attrs["title"], acts[i], rel=1e-3):
            bad.append(f"latent {f} example {e}: token {i} shows {sp.text()!r} {sp.attrs['title']}, want {acts[i]}")
        alpha = float(re.search(r"--a:\s*([0-9.]+)", sp.attrs.get("style", "")).group(1))
        if abs(alpha - min(1.0, acts[i] / mx)) > 0.006:
            bad.append(f"latent {f} example {e}: intensity {alpha} != act/max {acts[i] / mx}")
    marked = [sp for sp in spans if "x" in sp.attrs.get("class", "").split()]
    if len(marked) != 1 or marked[0].text() != visible(ref.token_text(int(toks[before]))):
        bad.append(f"latent {f} example {e}: the example token is not marked once")


def check_feature(ref, dumps, f):
    d = parse(f"{dumps}/feature_{f}.html")
    name = f"features/{f}.html"
    check(d.find_all("h1")[0].text() == f"Feature {f}", f"{name}: heading")
    check(close(d.by_id("density").text(), ref.f["density"][f], rel=1e-5), f"{name}: density {d.by_id('density').text()}")
    check(close(d.by_id("max_activation").text(), ref.f["max_activation"][f], rel=1e-5), f"{name}: max activation")
    flags = [s.text() for s in d.find_all("span", cls="flag")]
    check(("dead" in flags) == bool(ref.f["dead"][f]), f"{name}: flags {flags}")
    nav = {a.attrs.get("id"): a.attrs.get("href") for a in d.find_all("a") if a.attrs.get("id", "").startswith("nav-")}
    want_nav = {"nav-index": f"../index.html#q={f}"}
    if f > 0:
        want_nav["nav-prev"] = f"{f - 1}.html"
    if f + 1 < ref.F:
        want_nav["nav-next"] = f"{f + 1}.html"
    check(nav == want_nav, f"{name}: navigation {nav}")
    dead = bool(ref.f["dead"][f])
    if dead:
        check(d.by_id("quantiles") is None and d.by_id("hist") is None, f"{name}: a dead latent has no quantiles or histogram")
    if "quantiles" in ref.f and not dead:
        shown = [td.text() for td in d.by_id("quantiles").find_all("td")]
        check(len(shown) == ref.f["quantiles"].shape[1] and all(close(a, b, rel=1e-3) for a, b in zip(shown, ref.f["quantiles"][f])),
              f"{name}: quantiles {shown}")
    if "hist_counts" in ref.f and not dead:
        hist = d.by_id("hist")
        check(hist is not None and len(hist.find_all("rect")) == ref.f["hist_counts"].shape[1], f"{name}: activation histogram bars")
    if "neighbour_index" in ref.f:
        want = [int(n) for n in ref.f["neighbour_index"][f] if n >= 0]
        cells = d.by_id("neighbours").find_all("td", cls="nb")
        links = [c.find_all("a")[0].attrs["href"] for c in cells]
        check(links == [f"{n}.html" for n in want], f"{name}: neighbour links {links[:4]}...")
        cos = [c.parent.find_all("td")[1].text() for c in cells]
        check(all(close(a, b, rel=1e-3) for a, b in zip(cos, ref.f["neighbour_cosine"][f])), f"{name}: neighbour cosines")
    if ref.gt:
        gt = d.by_id("ground_truth").text()
        check(f"Best matching true feature: {int(ref.f['gt_match_index'][f])}," in gt, f"{name}: matched true feature")
    if "logit_top_ids" in ref.f:
        pos = d.find_all("table", cls="pos")[0].find_all("tr")[1:]
        want = [visible(ref.token_text(int(t))) for t in ref.f["logit_top_ids"][f]]
        check([tr.find_all("td")[0].text() for tr in pos] == want, f"{name}: positive logit tokens {want[:3]}")
        check(all(close(tr.find_all("td")[1].text(), v, rel=1e-3) for tr, v in zip(pos, ref.f["logit_top_values"][f])),
              f"{name}: positive logit values")
        neg = d.find_all("table", cls="neg")[0].find_all("tr")[1:]
        check([tr.find_all("td")[0].text() for tr in neg] == [visible(ref.token_text(int(t))) for t in ref.f["logit_bottom_ids"][f]],
              f"{name}: negative logit tokens")
    if ref.ex is None:
        return
    mx = float(ref.f["max_activation"][f]) or 1.0
    top = d.by_id("top")
    rows = top.find_all("tr")
    slots = example_slots(ref, "top", f)
    check(len(rows) == len(slots), f"{name}: {len(rows)} top examples shown ({len(slots)} in examples.h5)")
    bad = []
    for tr, e in zip(rows, slots):
        s = ref.ex["top"]
        if int(tr.attrs["data-row"]) != int(s["row"][f, e]) or not close(tr.find_all("td")[0].text(), s["activation"][f, e], rel=1e-3):
            bad.append(f"top example {e}: row/activation")
        check_context(ref, tr.find_all("td", cls="ctx")[0], s, f, e, mx, bad)
    check(not bad, f"{name}: top contexts: text, highlighted tokens and intensities, example marked" + ("" if not bad else ": " + "; ".join(bad[:4])))
    iv = d.by_id("intervals")
    slots = example_slots(ref, "interval", f)
    shown = iv.find_all("tr") if iv is not None else []
    check(len(shown) == len(slots), f"{name}: {len(shown)} interval samples shown ({len(slots)} in examples.h5)")
    bad = []
    for tr in shown:
        e = [e for e in slots if int(ref.ex["interval"]["row"][f, e]) == int(tr.attrs["data-row"])]
        if not e:
            bad.append(f"interval row {tr.attrs['data-row']} not in examples.h5")
            continue
        check_context(ref, tr.find_all("td", cls="ctx")[0], ref.ex["interval"], f, e[0], mx, bad)
    check(not bad, f"{name}: interval contexts" + ("" if not bad else ": " + "; ".join(bad[:4])))
    if ref.vocab is not None:
        check("⟨" not in top.text(), f"{name}: tokens decoded with the model's vocab.json")
    else:
        check("No tokenizer" in d.text(), f"{name}: the note says no tokenizer was available")


def check_offline(run):
    bad = []
    for root, _, files in os.walk(f"{run}/interpret"):
        for n in files:
            if n.endswith(".html"):
                t = open(os.path.join(root, n), encoding="utf-8").read()
                for pat in (r'src\s*=\s*"(https?:)?//', r'href\s*=\s*"(https?:)?//', r"url\((https?:)?//", r"@import"):
                    if re.search(pat, t):
                        bad.append(f"{n}: {pat}")
    check(not bad, "no page loads anything from the network" + ("" if not bad else ": " + ", ".join(bad[:3])))


def check_export(ref):
    d = f"{ref.run}/interpret/neuronpedia"
    def files(prefix):
        names = [n for n in os.listdir(d) if re.fullmatch(prefix + r"\d+\.json", n)]
        return sorted(names, key=lambda n: int(re.search(r"\d+", n).group()))
    batches, sidecars = files("batch-"), files("feature-extras-")
    check(len(batches) > 0 and len(sidecars) == len(batches) and len(os.listdir(d)) == 2 * len(batches),
          f"neuronpedia: {len(batches)} batch-<i>.json, each with its feature-extras-<i>.json, nothing else")
    feats = [x for n in batches for x in json.load(open(f"{d}/{n}", encoding="utf-8"))["features"]]
    extras = [x for n in sidecars for x in json.load(open(f"{d}/{n}", encoding="utf-8"))["features"]]
    check([x["feature_index"] for x in feats] == list(range(ref.F)), f"neuronpedia: {len(batches)} batches hold latents 0..{ref.F - 1} in order")
    check([x["index"] for x in extras] == list(range(ref.F)), "neuronpedia: the sidecars hold the same latents in the same order")
    bad = []
    compared = {"neighbours": 0, "top examples": 0}
    for x, e in zip(feats, extras):
        f = x["feature_index"]
        if not close(x["frac_nonzero"], ref.f["density"][f], rel=1e-9):
            bad.append(f"{f} frac_nonzero")
        if not close(e["maxActApprox"], ref.f["max_activation"][f], rel=1e-6):
            bad.append(f"{f} maxActApprox")
        if "neighbour_index" in ref.f:
            want = [int(n) for n in ref.f["neighbour_index"][f] if n >= 0]
            compared["neighbours"] += len(want)
            if e["topkCosSimIndices"] != want:
                bad.append(f"{f} topkCosSimIndices")
        if "hist_counts" in ref.f and x["freq_hist_data_bar_heights"] != [int(c) for c in ref.f["hist_counts"][f]]:
            bad.append(f"{f} freq_hist heights")
        if ref.ex is not None:
            n = len(example_slots(ref, "top", f)) + len(example_slots(ref, "interval", f))
            if len(x["activations"]) != n:
                bad.append(f"{f}: {len(x['activations'])} activations, want {n}")
            for a in x["activations"][:1]:
                compared["top examples"] += 1
                s = ref.ex["top"]
                toks = [int(t) for t in s["ctx_tokens"][f, 0] if t >= 0]
                if a["tokens"] != [ref.token_text(t) for t in toks]:
                    bad.append(f"{f}: tokens of the top example")
                if not close(a["values"][a["qualifying_token_index"]], s["activation"][f, 0], rel=1e-3, tol=1e-3):
                    bad.append(f"{f}: value at qualifying_token_index")
    check(not bad, "neuronpedia: frac_nonzero, neighbours, histograms and activations equal the stats files" + ("" if not bad else ": " + "; ".join(bad[:5])))
    # Something was compared: neighbours always (stats writes them), top examples when the
    # stats found any.
    check(compared["neighbours"] > 0 and (ref.ex is None or compared["top examples"] > 0),
          f"neuronpedia: compared {compared}")


def main():
    cmd, run = sys.argv[1], sys.argv[2]
    ref = Ref(run)
    if cmd == "plan":
        for name, page in plan(ref):
            print(name, page)
        return
    dumps = sys.argv[3]
    check_index(ref, dumps)
    for f in feature_pages(ref):
        check_feature(ref, dumps, f)
    check_offline(run)
    if os.path.isdir(f"{run}/interpret/neuronpedia"):
        check_export(ref)
    print(f"{len(FAILED)} checks failed" if FAILED else "all site checks passed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
