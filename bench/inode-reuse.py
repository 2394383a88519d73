#!/usr/bin/python3
"""Why a queue slows down after mass deletes (issue 17), without any MTA: how long creating an
empty file takes before and after N files with data were deleted beside it, and how long after.

ext4 without a journal (as here) will not hand out an inode that was freed in the last few
minutes (fs/ext4/ialloc.c, recently_deleted()): every allocation walks the group's free bits
from the start and reads each recently freed inode to check its deletion time. After a mass
delete each new file costs a walk over thousands of them. A message that creates three files
(body, envelope, journal) pays it three times; Postfix's one queue file pays it once.

Usage: bench/inode-reuse.py [DIR] [N] [M]   (defaults /tmp/mailops-inode-reuse, 20000, 2000)
Bounded: N files written and deleted, M files created per measurement, five measurements.
"""
import os
import shutil
import sys
import time

root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/mailops-inode-reuse"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
m = int(sys.argv[3]) if len(sys.argv) > 3 else 2000


def creates(label):
    """M empty files created in root/c (then unlinked), as a queue creates its files."""
    d = os.path.join(root, "c")
    os.makedirs(d, exist_ok=True)
    took = []
    for i in range(m):
        t = time.perf_counter()
        os.close(os.open(os.path.join(d, f"f{i:06d}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        took.append(time.perf_counter() - t)
    for i in range(m):
        os.unlink(os.path.join(d, f"f{i:06d}"))
    took.sort()
    print(f"{label:<40} median {took[m // 2] * 1e6:7.0f} us   p90 {took[int(m * 0.9)] * 1e6:7.0f} us   mean {sum(took) / m * 1e6:7.0f} us")


shutil.rmtree(root, ignore_errors=True)
os.makedirs(os.path.join(root, "data"))
creates("before")
for i in range(n):
    with open(os.path.join(root, "data", f"f{i}"), "wb") as f:
        f.write(b"x" * 4096)
os.sync()
creates(f"after writing {n} files of 4 KiB")
t = time.perf_counter()
shutil.rmtree(os.path.join(root, "data"))
print(f"deleting them: {time.perf_counter() - t:.2f} s")
creates("right after deleting them")
time.sleep(20)
creates("20 s later")
time.sleep(100)
creates("120 s later")
shutil.rmtree(root, ignore_errors=True)
