"""``python -m ts_notebook.deploy.watchdog KERNEL_PID KERNEL_START JVM_PID JVM_START RUN_DIR``: stop a
notebook's TorchServe when the kernel that started it exits. TorchServe's JVM daemonizes and never
learns that its kernel is gone; the embedded backend watches its parent itself, this does the same for the JVM.

It exits as soon as the JVM is gone, however that happened, and only ever stops the JVM it was
started for (checked by the JVM's start time, so a reused pid is left alone).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from ts_notebook.backend.info import INFO_FILE
    from ts_notebook.deploy.launch import stop_processes
    from ts_notebook.deploy.torchserve import _start_token

    # The start times come from the kernel: it may be gone before this process has looked.
    kernel, kernel_token, jvm, jvm_token, run_dir = int(argv[0]), argv[1], int(argv[2]), argv[3], Path(argv[4])
    while _start_token(jvm) == jvm_token:
        if _start_token(kernel) != kernel_token:
            stop_processes(jvm)
            (run_dir / INFO_FILE).unlink(missing_ok=True)
            return 0
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
