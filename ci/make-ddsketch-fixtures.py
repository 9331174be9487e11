#!/usr/bin/env python3
"""Generate the DDSketch interop fixtures for Faultline's quantile-sketch tests.

Builds sketches with DataDog's Python `ddsketch` package from seeded data sets,
serializes them with `DDSketchProto.to_proto(...).SerializeToString()`, and
writes Tests/QuantileSketchTests/Fixtures/ddsketch-python.json. For every
fixture it records the base64 bytes, the quantiles ddsketch answers after
decoding those bytes again (`from_proto`), and the exact quantiles of the data
(element at 0-based sorted index floor(q*(n-1)), ddsketch's rank convention).
A fixture with a non-null "expectError" must be rejected by our reader; the
string is a fragment of the expected error message.

Run with the CI venv: `$(ci/python-env) ci/make-ddsketch-fixtures.py`.
The output is deterministic (fixed seeds, pinned packages).
"""
import base64
import json
import math
import sys
from pathlib import Path

import google.protobuf
import numpy as np
from ddsketch import (
    CubicallyInterpolatedMapping,
    DDSketch,
    LinearlyInterpolatedMapping,
    LogCollapsingLowestDenseDDSketch,
)
from ddsketch import __version__ as ddsketch_version
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.pb import ddsketch_pb2
from ddsketch.pb.proto import DDSketchProto
from ddsketch.store import DenseStore

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "Tests/QuantileSketchTests/Fixtures/ddsketch-python.json"
QUANTILES = [0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1]
READER_BIN_LIMIT = 2048  # bins per store that Faultline's reader accepts
MAX_OUTPUT_BYTES = 300_000


def lognormal(seed, n, median=10.0, sigma=0.5):
    """RTT-like latencies in microseconds."""
    return np.random.default_rng(seed).lognormal(math.log(median), sigma, n).tolist()


def bimodal(seed, n):
    """95% fast path at ~2us with small jitter, 5% slow path at ~50us."""
    rng = np.random.default_rng(seed)
    slow = n // 20
    values = np.concatenate([
        rng.lognormal(math.log(2.0), 0.02, n - slow),
        rng.lognormal(math.log(50.0), 0.05, slow),
    ])
    rng.shuffle(values)
    return values.tolist()


def pareto(seed, n, alpha=1.1, scale=2.0):
    """Heavy-tailed latencies: Pareto with shape alpha and minimum `scale` us."""
    return ((np.random.default_rng(seed).pareto(alpha, n) + 1.0) * scale).tolist()


def mixed_signs(seed, n):
    """40% negative, 15% exactly zero, 45% positive; the median is a zero."""
    rng = np.random.default_rng(seed)
    negatives = n * 40 // 100
    zeros = n * 15 // 100
    values = np.concatenate([
        -rng.lognormal(math.log(10.0), 1.0, negatives),
        np.zeros(zeros),
        rng.lognormal(math.log(10.0), 1.0, n - negatives - zeros),
    ])
    rng.shuffle(values)
    return values.tolist()


def base_sketch(mapping):
    return BaseDDSketch(mapping=mapping, store=DenseStore(),
                        negative_store=DenseStore(), zero_count=0.0)


# (name, sketch class name, interpolation, relative accuracy, sketch factory, values, expectError)
FIXTURES = [
    ("lognormal-1", "LogCollapsingLowestDenseDDSketch", "NONE", 0.01,
     LogCollapsingLowestDenseDDSketch, lognormal(1, 1), None),
    ("lognormal-10", "LogCollapsingLowestDenseDDSketch", "NONE", 0.01,
     LogCollapsingLowestDenseDDSketch, lognormal(10, 10), None),
    ("lognormal-1000", "LogCollapsingLowestDenseDDSketch", "NONE", 0.01,
     LogCollapsingLowestDenseDDSketch, lognormal(1000, 1000), None),
    ("lognormal-100000", "LogCollapsingLowestDenseDDSketch", "NONE", 0.01,
     LogCollapsingLowestDenseDDSketch, lognormal(100000, 100000), None),
    ("lognormal-narrow-1000", "LogCollapsingLowestDenseDDSketch", "NONE", 0.01,
     LogCollapsingLowestDenseDDSketch, lognormal(1001, 1000, sigma=0.1), None),
    ("lognormal-1000-acc0.05", "LogCollapsingLowestDenseDDSketch", "NONE", 0.05,
     LogCollapsingLowestDenseDDSketch, lognormal(1005, 1000), None),
    ("lognormal-1000-acc0.001", "LogCollapsingLowestDenseDDSketch", "NONE", 0.001,
     LogCollapsingLowestDenseDDSketch, lognormal(1006, 1000), None),
    ("bimodal-10000", "LogCollapsingLowestDenseDDSketch", "NONE", 0.01,
     LogCollapsingLowestDenseDDSketch, bimodal(2, 10000), None),
    ("pareto-10000", "LogCollapsingLowestDenseDDSketch", "NONE", 0.01,
     LogCollapsingLowestDenseDDSketch, pareto(3, 10000), None),
    ("mixed-signs-1000", "LogCollapsingLowestDenseDDSketch", "NONE", 0.01,
     LogCollapsingLowestDenseDDSketch, mixed_signs(4, 1000), None),
    ("constant-100", "LogCollapsingLowestDenseDDSketch", "NONE", 0.01,
     LogCollapsingLowestDenseDDSketch, [7.25] * 100, None),
    ("empty", "LogCollapsingLowestDenseDDSketch", "NONE", 0.01,
     LogCollapsingLowestDenseDDSketch, [], None),
    ("linear-lognormal-wide-1000", "BaseDDSketch", "LINEAR", 0.01,
     lambda a: base_sketch(LinearlyInterpolatedMapping(a)),
     lognormal(5, 1000, sigma=2.0), None),
    ("cubic-lognormal-wide-1000", "BaseDDSketch", "CUBIC", 0.01,
     lambda a: base_sketch(CubicallyInterpolatedMapping(a)),
     lognormal(6, 1000, sigma=2.0), None),
    ("cubic-mixed-signs-1000", "BaseDDSketch", "CUBIC", 0.01,
     lambda a: base_sketch(CubicallyInterpolatedMapping(a)), mixed_signs(7, 1000), None),
    # Unbounded DenseStore spanning 1e-300..1e300: ~13,800 bins, over the reader's
    # limit. Accuracy 0.05 (not 0.01, ~69,000 bins) keeps the JSON under 300 KB.
    ("extreme-range-dense", "DDSketch", "NONE", 0.05,
     DDSketch, [1e-300, 1e-6, 1.0, 1e6, 1e300], "bin limit"),
]


def key(q):
    """JSON object key for quantile q: repr of the entry in QUANTILES ("0", "0.01", "1")."""
    return repr(q)


def exact_quantile(sorted_values, q):
    return sorted_values[math.floor(q * (len(sorted_values) - 1))]


def ddsketch_quantile(sketch, q):
    answer = sketch.get_quantile_value(q)
    return None if answer is None else float(answer)


def padding(store):
    """(leading, trailing) zero bins in a store's serialized contiguousBinCounts."""
    counts = list(store.contiguousBinCounts)
    if not any(counts):
        return (len(counts), 0)
    leading = next(i for i, c in enumerate(counts) if c)
    trailing = next(i for i, c in enumerate(reversed(counts)) if c)
    return (leading, trailing)


def build(name, sketch_name, interpolation, accuracy, factory, values, expect_error):
    sketch = factory(accuracy)
    for v in values:
        sketch.add(v)
    raw = DDSketchProto.to_proto(sketch).SerializeToString()
    proto = ddsketch_pb2.DDSketch.FromString(raw)
    decoded = DDSketchProto.from_proto(proto)
    assert decoded.count == len(values), name
    assert ddsketch_pb2.IndexMapping.Interpolation.Name(proto.mapping.interpolation) == interpolation

    ordered = sorted(values)
    dd = {key(q): ddsketch_quantile(decoded, q) for q in QUANTILES}
    exact = {key(q): exact_quantile(ordered, q) if ordered else None for q in QUANTILES}
    for q in QUANTILES:
        d, e = dd[key(q)], exact[key(q)]
        assert (d is None) == (e is None), (name, q)
        if e is not None:
            bound = 0.0 if e == 0 else accuracy * abs(e) * (1 + 1e-9)
            assert abs(d - e) <= bound, (name, q, d, e)

    bins = max(len(proto.positiveValues.contiguousBinCounts),
               len(proto.negativeValues.contiguousBinCounts))
    assert (bins > READER_BIN_LIMIT) == (expect_error == "bin limit"), (name, bins)

    fixture = {
        "name": name,
        "sketch": sketch_name,
        "interpolation": interpolation,
        "relativeAccuracy": accuracy,
        "count": len(values),
        "base64": base64.b64encode(raw).decode("ascii"),
        "ddsketchQuantiles": dd,
        "exactQuantiles": exact,
        "expectError": expect_error,
    }
    summary = "%-28s count=%-7d bytes=%-7d bins(+/-)=%d/%d padding(+)=%s padding(-)=%s" % (
        name, len(values), len(raw),
        len(proto.positiveValues.contiguousBinCounts),
        len(proto.negativeValues.contiguousBinCounts),
        padding(proto.positiveValues), padding(proto.negativeValues))
    return fixture, summary


def main():
    fixtures = []
    for spec in FIXTURES:
        fixture, summary = build(*spec)
        fixtures.append(fixture)
        print(summary)
    document = {
        "generator": "ci/make-ddsketch-fixtures.py",
        "ddsketch": ddsketch_version,
        "protobuf": google.protobuf.__version__,
        "quantiles": QUANTILES,
        "fixtures": fixtures,
    }
    text = json.dumps(document, sort_keys=False, indent=1, allow_nan=False) + "\n"
    if len(text.encode()) > MAX_OUTPUT_BYTES:
        sys.exit("fixture file would be %d bytes, over %d" % (len(text.encode()), MAX_OUTPUT_BYTES))
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print("wrote %s (%d bytes, %d fixtures)" % (OUTPUT.relative_to(ROOT), len(text.encode()), len(fixtures)))


if __name__ == "__main__":
    main()
