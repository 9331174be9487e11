#!/usr/bin/env python3
"""Check that sketches encoded by Faultline decode correctly in DataDog's Python `ddsketch`.

Usage: $(ci/python-env) ci/check-ddsketch-interop.py --faultline .build/debug/faultline

For each seeded data set, pipes the values (one repr float per line) into
`faultline sketch encode`, which prints the base64 of its DDSketch protobuf,
then decodes those bytes with `ddsketch.pb.proto.DDSketchProto.from_proto` and checks:
  - the decoded count equals the number of values;
  - every quantile in QUANTILES is within RELATIVE_ACCURACY of the exact quantile
    (element at 0-based sorted index floor(q*(n-1))); an exact 0 must answer 0;
  - `faultline sketch decode --json --q ...` on the same base64 reports the same
    count and the same quantiles as ddsketch (to 1e-9 relative).
Prints one PASS/FAIL line per data set and exits 1 if any failed.
"""
import argparse
import base64
import json
import math
import os
import subprocess
import sys

import numpy as np
from google.protobuf.message import DecodeError
from ddsketch.pb import ddsketch_pb2
from ddsketch.pb.proto import DDSketchProto

QUANTILES = [0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1]
RELATIVE_ACCURACY = 0.01
ACCURACY_SLACK = 1e-9
DECODE_TOLERANCE = 1e-9
TIMEOUT_SECONDS = 300


def lognormal(rng, n):
    return rng.lognormal(math.log(10.0), 0.5, n)


def bimodal(rng, n):
    slow = n // 20
    return np.concatenate([rng.lognormal(math.log(2.0), 0.02, n - slow),
                           rng.lognormal(math.log(50.0), 0.05, slow)])


def pareto(rng, n):
    return (rng.pareto(1.1, n) + 1.0) * 2.0


def mixed_signs(rng, n):
    negatives, zeros = n * 40 // 100, n * 15 // 100
    return np.concatenate([-rng.lognormal(math.log(10.0), 1.0, negatives),
                           np.zeros(zeros),
                           rng.lognormal(math.log(10.0), 1.0, n - negatives - zeros)])


# (name, generator, n, seed)
DATASETS = [
    ("lognormal-1", lognormal, 1, 101),
    ("lognormal-2", lognormal, 2, 102),
    ("lognormal-10", lognormal, 10, 103),
    ("lognormal-1000", lognormal, 1000, 104),
    ("lognormal-100000", lognormal, 100000, 105),
    ("bimodal-10000", bimodal, 10000, 106),
    ("pareto-1000", pareto, 1000, 107),
    ("pareto-100000", pareto, 100000, 108),
    ("mixed-signs-20", mixed_signs, 20, 109),
    ("mixed-signs-1000", mixed_signs, 1000, 110),
    ("mixed-signs-100000", mixed_signs, 100000, 111),
]


def run(argv, stdin_text):
    """Run a faultline command; return its stdout, or raise RuntimeError with its stderr."""
    proc = subprocess.run(argv, input=stdin_text, capture_output=True, text=True,
                          timeout=TIMEOUT_SECONDS)
    if proc.returncode != 0:
        raise RuntimeError("`%s` exited %d: %s" % (" ".join(argv[1:]), proc.returncode,
                                                   proc.stderr.strip()[-500:]))
    return proc.stdout


def relative_error(answer, expected):
    if expected == 0:
        return 0.0 if answer == 0 else math.inf
    return abs(answer - expected) / abs(expected)


def check(faultline, values):
    """Return (worst relative error vs exact, list of failure messages)."""
    failures = []
    n = len(values)
    encoded = run([faultline, "sketch", "encode"], "".join(repr(v) + "\n" for v in values))
    lines = encoded.strip().splitlines()
    if len(lines) != 1:
        return math.nan, ["encode printed %d lines, expected 1" % len(lines)]
    raw = base64.b64decode(lines[0], validate=True)
    proto = ddsketch_pb2.DDSketch.FromString(raw)
    sketch = DDSketchProto.from_proto(proto)

    if sketch.count != n:
        message = "ddsketch count %r != n %d" % (sketch.count, n)
        if proto.positiveValues.binCounts or proto.negativeValues.binCounts:
            message += " (bytes use the binCounts map, which ddsketch's from_proto ignores)"
        failures.append(message)

    ordered = sorted(values)
    worst = 0.0
    expected = {}
    for q in QUANTILES:
        answer = sketch.get_quantile_value(q)
        expected[repr(q)] = None if answer is None else float(answer)
        exact = ordered[math.floor(q * (n - 1))]
        if answer is None:
            failures.append("q=%r: ddsketch answered None, exact %r" % (q, exact))
            continue
        error = relative_error(answer, exact)
        worst = max(worst, error)
        if error > RELATIVE_ACCURACY + ACCURACY_SLACK:
            failures.append("q=%r: ddsketch %r vs exact %r (relative error %.6g)"
                            % (q, answer, exact, error))

    q_list = ",".join(repr(q) for q in QUANTILES)
    output = run([faultline, "sketch", "decode", "--json", "--q", q_list], lines[0] + "\n")
    try:
        ours = json.loads(output)
    except json.JSONDecodeError as error:
        return worst, failures + ["decode --json printed invalid JSON (%s): %r" % (error, output[:200])]
    if not isinstance(ours, dict) or set(ours) != {"count", "min", "max", "quantiles"}:
        return worst, failures + ["decode --json keys %r, expected count/min/max/quantiles"
                                  % (sorted(ours) if isinstance(ours, dict) else ours,)]
    if ours["count"] != n:
        failures.append("decode count %r != n %d" % (ours["count"], n))
    if ours["min"] is not None or ours["max"] is not None:
        failures.append("decode min/max %r/%r, expected null (protobuf has none)"
                        % (ours["min"], ours["max"]))
    if not isinstance(ours["quantiles"], dict) or set(ours["quantiles"]) != set(expected):
        return worst, failures + ["decode quantile keys %r, expected %s"
                                  % (ours["quantiles"], q_list)]
    for k, theirs in expected.items():
        mine = ours["quantiles"][k]
        if (mine is None) != (theirs is None) or (
                theirs is not None and relative_error(mine, theirs) > DECODE_TOLERANCE):
            failures.append("q=%s: decode %r vs ddsketch %r" % (k, mine, theirs))
    return worst, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faultline", required=True, help="path to the faultline binary")
    args = parser.parse_args()
    if not os.access(args.faultline, os.X_OK):
        parser.error("%s is not an executable file" % args.faultline)

    failed = 0
    for name, generate, n, seed in DATASETS:
        rng = np.random.default_rng(seed)
        values = generate(rng, n)
        rng.shuffle(values)
        try:
            worst, failures = check(args.faultline, values.tolist())
        except (RuntimeError, ValueError, TypeError, DecodeError,
                subprocess.TimeoutExpired) as error:
            worst, failures = math.nan, [str(error)]
        print("%s %-20s n=%-7d worst relative error %.6g"
              % ("FAIL" if failures else "PASS", name, n, worst))
        for failure in failures:
            print("    " + failure)
        failed += bool(failures)
    print("%d passed, %d failed" % (len(DATASETS) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
