#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Draws docs/benchmarks' plot: handover latency (p50, p99) and crash failover (p50) per
backend, from the results.tsv that bench/run-all writes (backend, metric, value, unit).
Needs matplotlib (Debian: python3-matplotlib); usage: plot_handover.py RESULTS.tsv OUT.png"""

import math
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERIES = [("handover_p50", "graceful handover p50"), ("handover_p99", "graceful handover p99"),
          ("failover_p50", "crash failover p50")]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_handover.py RESULTS.tsv OUT.png")
    figures = {}
    with open(sys.argv[1]) as f:
        for line in f:
            backend, metric, value, unit = line.rstrip("\n").split("\t")
            if unit != "ms":
                continue
            # A tool compared with lockunit on the same backend (etcdctl_handover_p50 …) gets
            # a group of its own bars.
            for name, _ in SERIES:
                if metric.endswith("_" + name):
                    tool = metric[:-len(name) - 1]
                    backend, metric = "%s\n(%s)" % (backend, tool), name
                    break
            figures.setdefault(backend, {})[metric] = float(value)
    backends = [b for b in sorted(figures, key=lambda b: (b != "file", b.split("\n")[0], b))
                if any(m in figures[b] for m, _ in SERIES)]
    if not backends:
        sys.exit("no handover figures to plot")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    width = 0.8 / len(SERIES)
    for i, (metric, label) in enumerate(SERIES):
        xs = [j + (i - (len(SERIES) - 1) / 2) * width for j in range(len(backends))]
        ys = [figures[b].get(metric, 0) for b in backends]
        bars = ax.bar(xs, ys, width, label=label)
        for bar, y in zip(bars, ys):
            if y:
                ax.annotate("%d" % y if y >= 100 else "%.3g" % y, (bar.get_x() + bar.get_width() / 2, y),
                            ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(backends)))
    ax.set_xticklabels(backends)
    ax.set_yscale("log")
    # Bars on a log scale need a floor well below the smallest one, or they mislead.
    smallest = min(v for b in backends for m, _ in SERIES for v in [figures[b].get(m, 0)] if v)
    largest = max(v for b in backends for m, _ in SERIES for v in [figures[b].get(m, 0)])
    ax.set_ylim(bottom=10 ** (math.floor(math.log10(smallest)) - 1), top=largest * 2)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: "%g" % y))
    ax.set_ylabel("milliseconds (log scale)")
    ax.set_title("lockunit: time until the next holder's payload runs")
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
