"""The benchmark report's charts as SVG text (no plotting library): horizontal bars of
tokens/s per implementation, and lines of tokens/s over MPI ranks. Margins are sized from the
longest label so that axis titles never sit on tick labels."""
import math

FONT = 11          # px
CHAR_W = 0.62 * FONT  # a sans-serif character's width, generously
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fmt(v):
    """Short tick and value labels: 950, 1.2k, 34k, 1.5M."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def nice_ticks(vmax, n=5):
    """0 and round steps up to at least vmax."""
    if vmax <= 0:
        return [0, 1]
    raw = vmax / (n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(math.ceil(vmax / step)) + 1)]


def text_w(s):
    return len(str(s)) * CHAR_W


def bars(title, rows, xlabel="tokens/s"):
    """rows: [(label, value, group)]; one bar per row, coloured by group, the value at its end."""
    groups = list(dict.fromkeys(g for _, _, g in rows))
    label_w = max(text_w(l) for l, _, _ in rows) + 12
    W, bar_h, gap, top = 640, 16, 6, 34
    plot_w = W - label_w - 70
    ticks = nice_ticks(max(v for _, v, _ in rows) * 1.05)
    vmax = ticks[-1]
    H = top + len(rows) * (bar_h + gap) + 46 + (14 * len(groups) if len(groups) > 1 else 0)
    def px(v): return label_w + plot_w * v / vmax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="{FONT}">',
           f'<rect width="{W}" height="{H}" fill="#fff"/>',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{esc(title)}</text>']
    axis_y = top + len(rows) * (bar_h + gap)
    for t in ticks:
        out.append(f'<line x1="{px(t):.1f}" y1="{top - 4}" x2="{px(t):.1f}" y2="{axis_y}" stroke="#ddd"/>')
        out.append(f'<text x="{px(t):.1f}" y="{axis_y + 14}" text-anchor="middle">{fmt(t)}</text>')
    out.append(f'<line x1="{label_w}" y1="{axis_y}" x2="{px(vmax):.1f}" y2="{axis_y}" stroke="#000"/>')
    out.append(f'<text x="{label_w + plot_w / 2}" y="{axis_y + 32}" text-anchor="middle">{esc(xlabel)}</text>')
    for i, (label, v, g) in enumerate(rows):
        y = top + i * (bar_h + gap)
        c = COLORS[groups.index(g) % len(COLORS)]
        out.append(f'<text x="{label_w - 8}" y="{y + bar_h - 4}" text-anchor="end">{esc(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y}" width="{max(0.5, px(v) - label_w):.1f}" height="{bar_h}" fill="{c}"/>')
        out.append(f'<text x="{px(v) + 4:.1f}" y="{y + bar_h - 4}">{fmt(v)}</text>')
    if len(groups) > 1:
        for j, g in enumerate(groups):
            y = axis_y + 46 + 14 * j
            out.append(f'<rect x="{label_w}" y="{y - 9}" width="10" height="10" fill="{COLORS[j % len(COLORS)]}"/>')
            out.append(f'<text x="{label_w + 14}" y="{y}">{esc(g)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def lines(title, xs, series, ylabel, xlabel="MPI ranks"):
    """series: {name: [y for each x]}; x positions evenly spaced, labelled with xs."""
    ticks = nice_ticks(max(max(v) for v in series.values()) * 1.05)
    tick_w = max(text_w(fmt(t)) for t in ticks)
    legend_w = max(text_w(n) for n in series) + 24
    L = 14 + FONT + 10 + tick_w + 8   # y title, gap, tick labels, gap
    W, H, top, B = 480 + legend_w, 280, 30, 46
    R = W - legend_w - 10
    ymax = ticks[-1]
    def px(i): return L + 10 + (R - L - 20) * (i / max(1, len(xs) - 1))
    def py(v): return H - B - (H - B - top) * v / ymax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="{FONT}">',
           f'<rect width="{W}" height="{H}" fill="#fff"/>',
           f'<text x="{(L + R) / 2}" y="18" text-anchor="middle" font-size="13">{esc(title)}</text>']
    for t in ticks:
        out.append(f'<line x1="{L}" y1="{py(t):.1f}" x2="{R}" y2="{py(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    out.append(f'<line x1="{L}" y1="{H - B}" x2="{R}" y2="{H - B}" stroke="#000"/>')
    out.append(f'<line x1="{L}" y1="{top}" x2="{L}" y2="{H - B}" stroke="#000"/>')
    ty = (top + H - B) / 2
    out.append(f'<text x="{14 + FONT / 2}" y="{ty}" transform="rotate(-90 {14 + FONT / 2} {ty})" '
               f'text-anchor="middle">{esc(ylabel)}</text>')
    for i, x in enumerate(xs):
        out.append(f'<text x="{px(i):.1f}" y="{H - B + 16}" text-anchor="middle">{esc(x)}</text>')
    out.append(f'<text x="{(L + R) / 2}" y="{H - 8}" text-anchor="middle">{esc(xlabel)}</text>')
    for j, (name, vals) in enumerate(series.items()):
        c = COLORS[j % len(COLORS)]
        pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(vals))
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>')
        out += [f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{c}"/>' for i, v in enumerate(vals)]
        out.append(f'<rect x="{R + 12}" y="{top + 16 * j}" width="10" height="10" fill="{c}"/>')
        out.append(f'<text x="{R + 26}" y="{top + 16 * j + 9}">{esc(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
