#!/usr/bin/env python3
"""Compare Faultline's Swift DDSketch with peer quantile sketches on the SAME data.

Comparison/CI tooling only: nothing here is part of the product. Run it through the
`ci/bench-peers` wrapper, which picks the interpreter from `ci/python-env`.

What it does:
  1. `faultline-bench --write-data TMP` writes the three RTT data sets (1,000,000 little-endian
     float64 values each, microseconds): lognormal, bimodal, pareto.
  2. `faultline-bench --json --data TMP` gives our insert cost (ns/value) and quantile estimates.
  3. Every peer sketch ingests the same values; we time inserts (median of --runs after one
     warm-up, time.perf_counter_ns, GC off while timing) and measure relative error at
     q = 0.5, 0.9, 0.99, 0.999 against the exact value sorted(values)[floor(q*(n-1))].
  4. Prints one table per data set (plain text, or Markdown with --markdown for docs/benchmarks.md).

Peers: ddsketch (DataDog Python: DDSketch, LogCollapsingLowestDenseDDSketch) fed by a Python loop
of add(); Apache DataSketches KLL, REQ and t-digest fed through their vectorized numpy update().
Python-loop timings are dominated by interpreter overhead; they are shown for what a Python user
pays, not as a like-for-like algorithm comparison.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Optional

import numpy as np
import datasketches
from ddsketch import DDSketch, LogCollapsingLowestDenseDDSketch
from ddsketch.pb.proto import DDSketchProto

DATASETS = ("lognormal", "bimodal", "pareto")
QUANTILES = (0.5, 0.9, 0.99, 0.999)
QUANTILE_LABELS = ("p50", "p90", "p99", "p99.9")
RELATIVE_ACCURACY = 0.01
SIZE_PREFIX = 1_000
DEFAULT_BENCH = "/work/main/.build/release/faultline-bench"


class ContractError(Exception):
    """The benchmark binary's output does not match the agreed contract."""


# --------------------------------------------------------------------------------------------
# Data and exact quantiles
# --------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    f64: np.ndarray  # as written by faultline-bench
    f32: np.ndarray  # for float-only sketches (REQ)
    as_list: list  # plain Python floats, for per-value add() loops (conversion not timed)
    exact: dict  # q -> exact value

    @property
    def n(self) -> int:
        return int(self.f64.size)


def exact_index(q: float, n: int) -> int:
    return int(math.floor(q * (n - 1)))


def load_dataset(directory: str, name: str) -> Dataset:
    path = os.path.join(directory, name + ".f64")
    if not os.path.isfile(path):
        raise ContractError(f"--write-data did not create {name}.f64")
    size = os.path.getsize(path)
    if size == 0 or size % 8 != 0:
        raise ContractError(f"{name}.f64 is {size} bytes, not a whole number of float64 values")
    values = np.fromfile(path, dtype="<f8")
    if not np.all(np.isfinite(values)):
        raise ContractError(f"{name}.f64 contains non-finite values")
    ordered = np.sort(values)
    exact = {q: float(ordered[exact_index(q, values.size)]) for q in QUANTILES}
    return Dataset(name, values, values.astype(np.float32), values.tolist(), exact)


def relative_error(estimate: float, exact: float) -> float:
    if exact == 0.0:
        return 0.0 if estimate == 0.0 else math.inf
    return abs(estimate - exact) / abs(exact)


# --------------------------------------------------------------------------------------------
# Our figures (from the Swift binary)
# --------------------------------------------------------------------------------------------


def run_bench(bench: str, *args: str) -> str:
    proc = subprocess.run([bench, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ContractError(
            f"`{os.path.basename(bench)} {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr.strip()}"
        )
    return proc.stdout


def parse_ours(raw: str, data: dict) -> tuple[dict, list]:
    """Validate the --json output; returns (parsed, warnings). Structural problems raise."""
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ContractError(f"--json output is not one JSON object ({e}); first 200 chars: {raw[:200]!r}")
    if not isinstance(doc, dict):
        raise ContractError(f"--json output is a {type(doc).__name__}, expected an object")
    problems, warnings = [], []
    for key in ("machine", "relativeAccuracy", "datasets"):
        if key not in doc:
            problems.append(f"top-level key {key!r} missing (have {sorted(doc)})")
    datasets = doc.get("datasets")
    if not isinstance(datasets, dict):
        problems.append("'datasets' is not an object")
        datasets = {}
    ours = {}
    for name in DATASETS:
        entry = datasets.get(name)
        if not isinstance(entry, dict):
            problems.append(f"datasets.{name} missing (have {sorted(datasets)})")
            continue
        for key in ("count", "insertNsPerValue", "quantiles"):
            if key not in entry:
                problems.append(f"datasets.{name}.{key} missing (have {sorted(entry)})")
        qmap = entry.get("quantiles") if isinstance(entry.get("quantiles"), dict) else {}
        by_q = {}
        for k, v in qmap.items():
            try:
                by_q[float(k)] = v
            except ValueError:
                problems.append(f"datasets.{name}.quantiles key {k!r} is not a number")
        quantiles = {}
        for q in QUANTILES:
            v = by_q.get(q)
            if not isinstance(v, dict) or not all(k in v for k in ("exact", "estimate", "relativeError")):
                problems.append(f"datasets.{name}.quantiles[{q!r}] missing or lacks exact/estimate/relativeError: {v!r}")
                continue
            quantiles[q] = {k: float(v[k]) for k in ("exact", "estimate", "relativeError")}
        if name in data and isinstance(entry.get("count"), (int, float)) and entry["count"] != data[name].n:
            warnings.append(f"datasets.{name}.count = {entry['count']} but {name}.f64 holds {data[name].n} values")
        if name in data:
            for q, v in quantiles.items():
                want = data[name].exact[q]
                if not math.isclose(v["exact"], want, rel_tol=1e-9, abs_tol=0.0):
                    warnings.append(
                        f"datasets.{name} q={q}: exact {v['exact']!r} != sorted(values)[floor(q*(n-1))] = {want!r}"
                    )
                own = relative_error(v["estimate"], v["exact"])
                if not math.isclose(v["relativeError"], own, rel_tol=1e-6, abs_tol=1e-12):
                    warnings.append(
                        f"datasets.{name} q={q}: relativeError {v['relativeError']!r} != "
                        f"|estimate-exact|/exact = {own!r} (from its own estimate and exact)"
                    )
                # The table uses the same exact value for every sketch.
                v["tableError"] = relative_error(v["estimate"], want)
        ns = entry.get("insertNsPerValue")
        if ns is not None and (not isinstance(ns, (int, float)) or ns <= 0):
            problems.append(f"datasets.{name}.insertNsPerValue is {ns!r}, expected a positive number")
        if not isinstance(ns, (int, float)) or ns <= 0:
            ns = math.nan
        batch = entry.get("batchInsertNsPerValue")
        if not isinstance(batch, (int, float)) or batch <= 0:
            batch = math.nan
        ours[name] = {"ns": float(ns), "batchNs": float(batch), "quantiles": quantiles}
    ra = doc.get("relativeAccuracy")
    if "relativeAccuracy" in doc and not isinstance(ra, (int, float)):
        problems.append(f"relativeAccuracy is {ra!r}, expected a number")
    elif isinstance(ra, (int, float)) and ra != RELATIVE_ACCURACY:
        warnings.append(f"relativeAccuracy is {ra}, peers are configured for {RELATIVE_ACCURACY}")
    if problems:
        raise ContractError("--json output does not match the contract:\n  - " + "\n  - ".join(problems + warnings))
    return {"machine": str(doc["machine"]), "relativeAccuracy": ra, "datasets": ours}, warnings


# --------------------------------------------------------------------------------------------
# Peers
# --------------------------------------------------------------------------------------------


@dataclass
class Peer:
    name: str
    feed: str  # how values are inserted (shown in the table)
    make: Callable[[], Any]
    insert: Callable[[Any, Dataset], None]
    quantile: Callable[[Any, float, int], float]
    serialize: Optional[Callable[[Any], bytes]]


def _prefix(ds: Dataset, k: int) -> Dataset:
    return Dataset(ds.name, ds.f64[:k], ds.f32[:k], ds.as_list[:k], {})


def _dd_insert(sketch, ds: Dataset) -> None:
    add = sketch.add
    for v in ds.as_list:
        add(v)


def _dd_quantile(sketch, q: float, n: int) -> float:
    # ddsketch uses rank = q*(count-1) with the lower-bin convention: same as floor(q*(n-1)).
    return float(sketch.get_quantile_value(q))


def _ds_rank(q: float, n: int) -> float:
    # DataSketches normalized rank whose (inclusive) answer is sorted[floor(q*(n-1))]:
    # item i has inclusive rank (i+1)/n, so (i+0.5)/n selects it without floating-point edge cases.
    # For t-digest it is the midpoint of item i's weight, i.e. the same target.
    return (exact_index(q, n) + 0.5) / n


def _supports_batch(cls, dtype) -> bool:
    try:
        cls().update(np.zeros(2, dtype=dtype))
        return True
    except TypeError:
        return False


def _ds_inserter(dtype):
    """Returns (vectorized insert, per-value loop insert) for a DataSketches class."""
    def batch(sketch, ds: Dataset) -> None:
        sketch.update(ds.f32 if dtype == np.float32 else ds.f64)

    def loop(sketch, ds: Dataset) -> None:
        update = sketch.update
        for v in ds.as_list:
            update(v)

    return batch, loop


def build_peers() -> list:
    dd_proto = lambda s: DDSketchProto.to_proto(s).SerializeToString()
    peers = [
        Peer("ddsketch DDSketch(0.01)", "Python add() loop",
             lambda: DDSketch(RELATIVE_ACCURACY), _dd_insert, _dd_quantile, dd_proto),
        Peer("ddsketch LogCollapsingLowest(0.01, 2048)", "Python add() loop",
             lambda: LogCollapsingLowestDenseDDSketch(RELATIVE_ACCURACY, 2048),
             _dd_insert, _dd_quantile, dd_proto),
    ]
    ds_specs = [
        ("DataSketches KLL doubles k=200", lambda: datasketches.kll_doubles_sketch(200),
         datasketches.kll_doubles_sketch, np.float64,
         lambda s, q, n: float(s.get_quantile(_ds_rank(q, n), True))),
        ("DataSketches REQ floats k=12 HRA", lambda: datasketches.req_floats_sketch(12, True),
         datasketches.req_floats_sketch, np.float32,
         lambda s, q, n: float(s.get_quantile(_ds_rank(q, n), True))),
        ("DataSketches t-digest k=100", lambda: datasketches.tdigest_double(100),
         datasketches.tdigest_double, np.float64,
         lambda s, q, n: float(s.get_quantile(_ds_rank(q, n)))),
        ("DataSketches t-digest k=200", lambda: datasketches.tdigest_double(200),
         datasketches.tdigest_double, np.float64,
         lambda s, q, n: float(s.get_quantile(_ds_rank(q, n)))),
    ]
    for name, make, cls, dtype, quantile in ds_specs:
        batch, loop = _ds_inserter(dtype)
        vectorized = _supports_batch(cls, dtype)
        feed = f"numpy update() ({np.dtype(dtype).name})" if vectorized else "Python update() loop"
        peers.append(Peer(name, feed, make, batch if vectorized else loop, quantile,
                          lambda s: bytes(s.serialize())))
    return peers


def measure_peer(peer: Peer, ds: Dataset, runs: int) -> dict:
    """Insert cost: median ns/value over `runs` timed runs after one warm-up. Errors: per quantile,
    the median over the timed runs' sketches (KLL and REQ are randomized). Sizes: serialized bytes
    after the first SIZE_PREFIX values and after all n."""
    samples, errors = [], {q: [] for q in QUANTILES}
    sketch = None
    for i in range(runs + 1):
        sketch = peer.make()
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter_ns()
            peer.insert(sketch, ds)
            t1 = time.perf_counter_ns()
        finally:
            gc.enable()
        if i == 0:
            continue
        samples.append((t1 - t0) / ds.n)
        for q in QUANTILES:
            errors[q].append(relative_error(peer.quantile(sketch, q, ds.n), ds.exact[q]))
    sizes = (None, None)
    if peer.serialize is not None:
        small = peer.make()
        peer.insert(small, _prefix(ds, SIZE_PREFIX))
        sizes = (len(peer.serialize(small)), len(peer.serialize(sketch)))
    return {"ns": statistics.median(samples), "errors": {q: statistics.median(e) for q, e in errors.items()},
            "bytes_prefix": sizes[0], "bytes_full": sizes[1]}


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def fmt_ns(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:,.0f}" if x >= 1000 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def fmt_ratio(x: Optional[float]) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:,.0f}x" if x >= 100 else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def fmt_err(x: float) -> str:
    if not math.isfinite(x):
        return "inf"
    if x == 0.0:
        return "0"
    pct = 100.0 * x
    if pct >= 100:
        return f"{pct:,.0f}%"
    if pct >= 0.001:
        return f"{pct:.3f}%"
    return f"{pct:.1e}%"


def fmt_bytes(x: Optional[int]) -> str:
    return "n/a" if x is None else f"{x:,}"


HEADERS = ["sketch", "insert via", "ns/value", "vs ours", "max rel err"] + \
          [f"err {l}" for l in QUANTILE_LABELS] + [f"bytes @{SIZE_PREFIX:,}", "bytes @n"]
NUMERIC = [False, False] + [True] * (len(HEADERS) - 2)


def render_text(rows: list) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]

    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, NUMERIC)).rstrip()

    return "\n".join([line(HEADERS), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def render_markdown(rows: list) -> str:
    out = ["| " + " | ".join(HEADERS) + " |",
           "|" + "|".join("---:" if num else "---" for num in NUMERIC) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Compare Faultline's DDSketch with peer sketches on the same data.")
    ap.add_argument("--bench", default=DEFAULT_BENCH, help=f"faultline-bench binary (default {DEFAULT_BENCH})")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per sketch, after one warm-up (default 5)")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs/benchmarks.md)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if not (os.path.isfile(args.bench) and os.access(args.bench, os.X_OK)):
        print(f"bench-peers: {args.bench} not found or not executable; "
              f"build it with `swift build -c release` first.", file=sys.stderr)
        return 2

    try:
        with tempfile.TemporaryDirectory(prefix="faultline-bench-peers-") as tmp:
            run_bench(args.bench, "--write-data", tmp)
            data = {name: load_dataset(tmp, name) for name in DATASETS}
            ours, warnings = parse_ours(run_bench(args.bench, "--json", "--data", tmp), data)
    except ContractError as e:
        print(f"bench-peers: contract mismatch with {args.bench}:\n{e}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"bench-peers: warning: {w}", file=sys.stderr)

    peers = build_peers()
    md = args.markdown
    out = []
    title = "Faultline DDSketch vs peer quantile sketches (same data)"
    out += [f"## {title}" if md else title, ""]
    info = [
        f"machine (from faultline-bench): {ours['machine']}",
        f"host: {platform.machine()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"ddsketch {version('ddsketch')}, datasketches {version('datasketches')}, numpy {np.__version__}",
        f"ours: relativeAccuracy {ours['relativeAccuracy']}; peers: ns/value is the median of {args.runs} "
        f"run(s) after 1 warm-up (time.perf_counter_ns, GC off); peer errors are the median over those runs",
        "exact quantile = sorted(values)[floor(q*(n-1))], computed here for every sketch including ours "
        "(from its reported estimate); relative error = |estimate - exact| / exact; "
        "'vs ours' = peer ns/value / our batch ns/value (add(contentsOf:), like the peers' vectorized "
        "update(); our per-value add() row is shown too)",
        f"bytes = serialized size (ddsketch: DDSketchProto protobuf; DataSketches: serialize()) after the "
        f"first {SIZE_PREFIX:,} values and after all n; not reported for ours",
    ]
    out += [f"- {i}" for i in info] if md else info
    for name in DATASETS:
        ds = data[name]
        mine = ours["datasets"][name]
        our_errs = {q: mine["quantiles"][q]["tableError"] for q in QUANTILES}
        # The peers' vectorized updates compare with our batch insert; fall back to per-value.
        base_ns = mine["batchNs"] if mine["batchNs"] > 0 else mine["ns"]
        rows = []
        for feed, ns in (("add(contentsOf:)", mine["batchNs"]), ("add() per value", mine["ns"])):
            if not ns > 0:
                continue
            rows.append([
                f"Faultline DDSketch({ours['relativeAccuracy']:g}) (Swift)", feed, fmt_ns(ns),
                fmt_ratio(ns / base_ns), fmt_err(max(our_errs.values())),
                *(fmt_err(our_errs[q]) for q in QUANTILES), "n/a", "n/a",
            ])
        for peer in peers:
            print(f"bench-peers: {name}: {peer.name} ...", file=sys.stderr, flush=True)
            m = measure_peer(peer, ds, args.runs)
            ratio = m["ns"] / base_ns if base_ns > 0 else None
            rows.append([
                peer.name, peer.feed, fmt_ns(m["ns"]), fmt_ratio(ratio), fmt_err(max(m["errors"].values())),
                *(fmt_err(m["errors"][q]) for q in QUANTILES),
                fmt_bytes(m["bytes_prefix"]), fmt_bytes(m["bytes_full"]),
            ])
        exacts = ", ".join(f"{l}={ds.exact[q]:.4g}" for l, q in zip(QUANTILE_LABELS, QUANTILES))
        heading = f"{name} (n={ds.n:,}; exact us: {exacts})"
        out += ["", f"### {heading}" if md else f"== {heading} ==", ""]
        out.append(render_markdown(rows) if md else render_text(rows))
    notes = [
        "KLL and REQ compact with random choices: each peer error is the median over its timed runs, and still "
        "varies between invocations (most at p99.9, where KLL's rank error spans more than the top 0.1%).",
        "REQ is a float32 sketch: values are converted to float32 before insertion (about 6e-8 relative rounding).",
        "ddsketch rows are a pure-Python loop of add(): the cost is mostly interpreter overhead.",
        "KLL, REQ and t-digest bound rank error, not value error: on steep or heavy-tailed data a small rank "
        "error can be a large relative error in value, which is what this table reports.",
    ]
    out += ["", "**Notes**", ""] if md else ["", "Notes:"]
    out += [f"- {n}" for n in notes]
    print("\n".join(out))
    return 1 if warnings else 0


if __name__ == "__main__":
    sys.exit(main())
