"""A worker's large buffers go back to the system when freed (malloc_tuning.py)."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")

# Two 20 MB buffers, one after the other, each written in full and freed; then how much more
# the process holds. glibc raises its mmap threshold to the first buffer's size when it is
# freed (up to 32 MiB), so the second comes from the heap and stays held once freed, unless
# the threshold was fixed first.
PROGRAM = """
import sys
from periskop_pushgateway.malloc_tuning import return_large_buffers_when_freed
if sys.argv[1] == "fixed":
    assert return_large_buffers_when_freed()
elif sys.argv[1] == "gunicorn's pre_fork":
    from periskop_pushgateway.gunicorn_settings import gunicorn_settings
    gunicorn_settings()["pre_fork"](None, None)
def resident_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
before = resident_mib()
for _ in range(2):
    buffer = b"x" * (20 * 1024 * 1024)
    del buffer
print(resident_mib() - before)
"""


def held_after_freeing(mode):
    output = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True
    ).stdout
    return float(output)


def test_large_buffers_are_returned_once_freed():
    assert held_after_freeing("default") > 15  # what the fixed threshold prevents
    assert held_after_freeing("fixed") < 5


def test_gunicorn_workers_fork_with_the_fixed_threshold():
    assert held_after_freeing("gunicorn's pre_fork") < 5
