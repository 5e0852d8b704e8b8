#!/usr/bin/env python3
"""Checks a benchmark report written by bench/report.py (the numbers are not known in advance:
only their form and a few facts that must hold whatever the machine):
  - the sections of a CPU report are there: the train step (saepipe, eai-sparsify, sae-lens,
    each with AuxK idle and with dead latents), the harvest (saepipe and transformers forward,
    the harvest stage), the stats stage, the kernels, strong and weak scaling;
  - every row of every table has a number in every column after the name columns (tokens/s
    > 0, a min – max range, a share of the bound in %, a ratio ×);
  - every implementation's loss fell over its steps (a step that does not train cannot give
    a flattering ratio);
  - saepipe's and transformers' hooked activations agree (relative difference < 1e-3);
  - nothing failed, and every chart the report shows is an SVG file that parses.
Prints what is wrong and exits 1, or prints a summary and exits 0.

  check_bench_report.py REPORT_DIR
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

NUM = r"[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?"


def tables(md):
    """[(title, header cells, [row cells])] for every Markdown table, titled by the heading above it."""
    out, title, lines = [], "", md.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            title = lines[i].lstrip("#").strip()
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-:|]+\|$", lines[i + 1]):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            out.append((title, header, rows))
            continue
        i += 1
    return out


def check_cell(header, cell):
    """None if the cell holds the number its column needs, else what is wrong."""
    if header == "tokens/s":
        return None if re.fullmatch(NUM, cell) and float(cell) > 0 else "not a positive number"
    if header == "min – max":
        return None if re.fullmatch(rf"{NUM} – {NUM}|{NUM} \(one run\)", cell) else "not a range"
    if header == "share of bound":
        return None if re.fullmatch(rf"{NUM}%", cell) and float(cell[:-1]) > 0 else "not a share in %"
    if header == "saepipe ÷ this":
        return None if re.fullmatch(rf"{NUM}×", cell) and float(cell[:-1]) > 0 else "not a ratio"
    if header.startswith("loss"):
        m = re.match(rf"({NUM}) → ({NUM})", cell)
        if not m:
            return "not 'first → last'"
        return None if float(m.group(2)) < float(m.group(1)) else "the loss did not fall: the step does not train"
    return None if re.search(r"[0-9]", cell) else "no number"


def main():
    out = sys.argv[1]
    md = open(os.path.join(out, "report.md")).read()
    errors = []
    found = tables(md)
    titles = [t for t, _, _ in found]
    for want in ("TopK train step (cpu)", "Harvest: model forward (cpu)", "Stats stage (cpu)",
                 "Kernels and the train step", "Strong scaling", "Weak scaling"):
        if not any(t.startswith(want) for t in titles):
            errors.append(f"no table under a heading starting with '{want}'")
    for title, header, rows in found:
        if not rows:
            errors.append(f"{title}: a table without rows")
        text_cols = 2 if len(header) > 1 and header[1] in ("AuxK", "model") else 1
        for row in rows:
            if len(row) != len(header):
                errors.append(f"{title}: row {row[0]!r} has {len(row)} cells for {len(header)} columns")
                continue
            for h, c in list(zip(header, row))[text_cols:]:
                if (why := check_cell(h, c)) is not None:
                    errors.append(f"{title}: row {row[0]!r} ({', '.join(row[1:text_cols])}), column '{h}': "
                                  f"{c!r}: {why}")
        if title.startswith("TopK train step"):
            impls = {(re.sub(r" \S+$", "", r[0]).split(" (")[0], r[1]) for r in rows}
            for impl in ("saepipe", "eai-sparsify", "sae-lens"):
                for group in ("idle", "10% dead"):
                    if (impl, group) not in impls:
                        errors.append(f"{title}: no row for {impl} with AuxK {group}")
            dead = [int(r[header.index("dead latents")]) for r in rows if r[1] != "idle"]
            if any(n == 0 for n in dead):
                errors.append(f"{title}: a row with dead latents reports none dead")
        if title.startswith("Harvest"):
            names = " ".join(r[0] for r in rows)
            for part in ("saepipe", "transformers", "harvest stage"):
                if part not in names:
                    errors.append(f"{title}: no {part} row")
    checks = re.findall(rf"relative difference ({NUM})", md)
    if not checks:
        errors.append("no activations check (saepipe vs transformers) in the harvest section")
    errors += [f"activations differ: relative difference {c}" for c in checks if float(c) >= 1e-3]
    mem = re.findall(rf"Peak resident memory, [^:]+: after loading the model saepipe ({NUM}) MiB, transformers ({NUM}) MiB", md)
    if len(mem) != len(checks) or any(float(x) <= 0 for pair in mem for x in pair):
        errors.append("the harvest section lacks the peak memory of loading each model (saepipe and transformers)")
    if "**Failed:**" in md:
        errors.append("failed: " + md.split("**Failed:**", 1)[1].strip().split("\n\n")[0])
    for svg in re.findall(r"!\[[^\]]*\]\(([^)]+\.svg)\)", md):
        try:
            if not ET.parse(os.path.join(out, svg)).getroot().tag.endswith("svg"):
                errors.append(f"{svg}: not an SVG")
        except (OSError, ET.ParseError) as e:
            errors.append(f"{svg}: {e}")
    if errors:
        print("\n".join("FAIL: " + e for e in errors))
        sys.exit(1)
    print(f"ok: {len(found)} tables, {sum(len(r) for _, _, r in found)} rows, every row with its numbers; "
          f"every loss falls; {len(checks)} activations check(s) agree")


if __name__ == "__main__":
    main()
