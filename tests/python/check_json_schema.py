#!/usr/bin/env python3
"""Validates JSON files against a JSON Schema: with the `jsonschema` package when it is
installed, else with the subset written here (type incl. null, const, enum, minimum, maximum,
exclusiveMinimum/Maximum, required, properties, additionalProperties false, items, minItems,
maxItems, $ref to #/$defs/...), which covers schemas/neuronpedia_batch.schema.json.

  check_json_schema.py SCHEMA FILE...     exit 0 when every file is valid, else 1 (first error printed)
"""
import json
import sys


def check(v, s, root, path, errors):
    if "$ref" in s:
        ref = s["$ref"]
        assert ref.startswith("#/$defs/"), ref
        s = {**root["$defs"][ref[len("#/$defs/"):]], **{k: x for k, x in s.items() if k != "$ref"}}
    t = s.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    if t == "integer":
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif t == "number":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    elif t is not None:
        ok = isinstance(v, types[t])
    else:
        ok = True
    if not ok:
        errors.append(f"{path}: {type(v).__name__} is not {t}")
        return
    if "const" in s and v != s["const"]:
        errors.append(f"{path}: {v!r} is not {s['const']!r}")
    if "enum" in s and v not in s["enum"]:
        errors.append(f"{path}: {v!r} not in {s['enum']}")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        for k, bad in (("minimum", lambda a, b: a < b), ("maximum", lambda a, b: a > b),
                       ("exclusiveMinimum", lambda a, b: a <= b), ("exclusiveMaximum", lambda a, b: a >= b)):
            if k in s and bad(v, s[k]):
                errors.append(f"{path}: {v} violates {k} {s[k]}")
    if isinstance(v, dict):
        for r in s.get("required", []):
            if r not in v:
                errors.append(f"{path}: required key {r!r} missing")
        props = s.get("properties", {})
        for k, x in v.items():
            if k in props:
                check(x, props[k], root, f"{path}.{k}", errors)
            elif s.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected key {k!r}")
    if isinstance(v, list):
        if "minItems" in s and len(v) < s["minItems"]:
            errors.append(f"{path}: {len(v)} items < minItems {s['minItems']}")
        if "maxItems" in s and len(v) > s["maxItems"]:
            errors.append(f"{path}: {len(v)} items > maxItems {s['maxItems']}")
        if "items" in s:
            for i, x in enumerate(v):
                check(x, s["items"], root, f"{path}[{i}]", errors)
                if len(errors) > 20:
                    return


def main():
    schema = json.load(open(sys.argv[1]))
    try:
        import jsonschema
        validator = jsonschema.Draft202012Validator(schema)
    except (ImportError, AttributeError):
        validator = None
    bad = 0
    for p in sys.argv[2:]:
        doc = json.load(open(p, encoding="utf-8"))
        if validator is not None:
            errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
        else:
            errors = []
            check(doc, schema, schema, "$", errors)
        if errors:
            bad += 1
            print(f"{p}: {errors[0]} ({len(errors)} errors)")
    print(f"{len(sys.argv) - 2 - bad} of {len(sys.argv) - 2} files valid "
          f"({'jsonschema' if validator is not None else 'built-in subset validator'})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
