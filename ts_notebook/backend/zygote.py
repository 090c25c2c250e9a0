"""The zygote: imports torch once (running no op, so no thread pool exists yet), then forks a
ready worker in milliseconds whenever the backend asks. CUDA is never initialised here: the GPU
count comes from NVML, so each forked worker can still pick its own device.

Run as ``python -m ts_notebook.backend.zygote CONTROL_SOCKET``.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys

from ts_notebook.backend import ipc, protocol
from ts_notebook.backend.messages import Exited, Spawn, Spawned, Stop, ZygoteReady


def _gpu_count() -> int:
    # Tests on machines without a GPU set this to check how devices are handed out (workers then
    # still fall back to the CPU, as TorchServe's BaseHandler does when CUDA is unavailable).
    if os.environ.get("TS_NOTEBOOK_GPU_COUNT"):
        return int(os.environ["TS_NOTEBOOK_GPU_COUNT"])
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # count devices without a CUDA context
    import torch

    try:
        return int(torch.cuda.device_count())
    except Exception:
        return 0


def _warm_imports() -> None:
    import torch  # noqa: F401  - the point of the zygote: every worker starts with torch imported

    import ts_notebook.handler
    import ts_notebook.handler.base_handler  # noqa: F401


def _spawn(control: socket.socket, message: Spawn, secret: bytes) -> int:
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            from ts_notebook.backend import worker

            code = worker.run(message.sock_path, message.spec, secret)
        except BaseException:
            import traceback

            traceback.print_exc(file=sys.__stderr__)
        finally:
            os._exit(code)
    return pid


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        protocol.send(control, Exited(pid, code))


def main(control_path: str) -> int:
    secret = bytes.fromhex(sys.stdin.readline().strip())  # the backend writes it there, then closes stdin
    gpus = _gpu_count()
    _warm_imports()
    control = ipc.connect(control_path, secret)
    protocol.send(control, ZygoteReady(os.getpid(), gpus))
    while True:
        readable, _, _ = select.select([control], [], [], 0.2)
        _reap(control)
        if not readable:
            continue
        message = protocol.recv(control)
        if message is None or isinstance(message, Stop):
            return 0
        if isinstance(message, Spawn):
            pid = _spawn(control, message, secret)
            protocol.send(control, Spawned(message.spec.worker_id, pid))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
