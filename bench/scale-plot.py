#!/usr/bin/python3
"""Plots bench/scale.tsv (bench/scale.sh): four panels against the number of queued messages,
MailOps and Postfix on the same axes. Usage: scale-plot.py scale.tsv scale.png"""
import csv
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
panels = [
    ("list_s", "listing the whole queue (s)"),
    ("first_delivery_s", "start to first delivery (s)"),
    ("rate_msg_s", "delivery rate (msg/s)"),
    ("server_peak_mb", "server peak resident (MB)"),
]
fig, axes = plt.subplots(2, 2, figsize=(10, 7))
for ax, (key, title) in zip(axes.flat, panels):
    for mta, style in (("mailops", "o-"), ("postfix", "s--")):
        points = sorted((int(r["queued"]), float(r[key])) for r in rows if r["mta"] == mta)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], style, label=mta)
    ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel("queued messages")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
fig.suptitle("A server holding a long queue: MailOps and Postfix 3.7, 2 cores, 4 KiB messages")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=80)
