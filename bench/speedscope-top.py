#!/usr/bin/python3
"""Where the CPU went in a dotnet-trace speedscope file (sampled thread time): CPU_TIME samples
attributed to the frame that was running (self) and to every frame on its stack (inclusive).
Usage: speedscope-top.py FILE [N]"""
import collections, json, sys

data = json.load(open(sys.argv[1]))
top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
frames = [f["name"].split("!", 1)[-1][:110] for f in data["shared"]["frames"]]
own, within, total = collections.Counter(), collections.Counter(), 0.0
for profile in data["profiles"]:
    stack, last = [], None
    for event in profile["events"]:
        if stack and last is not None and frames[stack[-1]] == "CPU_TIME":
            dt = event["at"] - last
            total += dt
            if len(stack) > 1:
                own[stack[-2]] += dt
            for f in set(stack[:-1]):
                within[f] += dt
        if event["type"] == "O":
            stack.append(event["frame"])
        elif stack:
            stack.pop()
        last = event["at"]
print(f"CPU time on all threads: {total / 1000:.1f} s")
print(f"\nself, top {top}:")
for f, v in own.most_common(top):
    print(f"{v / total * 100:5.1f}%  {frames[f]}")
print(f"\ninclusive, MailOps and MailKit frames, top {top}:")
shown = 0
for f, v in within.most_common():
    if frames[f].startswith(("MailOps.", "MailKit.")) and "AsyncStateMachineBox" not in frames[f]:
        print(f"{v / total * 100:5.1f}%  {frames[f]}")
        shown += 1
        if shown == top:
            break
