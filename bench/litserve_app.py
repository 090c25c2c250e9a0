"""LitServe serving one of the benchmark's archives: run by the floor benchmark under LitServe's own
venv (``make litserve-venv``), with a copy of our handler runtime on PYTHONPATH, so LitServe runs the
very handler code the other servers run (TorchServe's request shaping, the same ``handle`` call).

``python litserve_app.py ARCHIVE PORT WORKERS BATCH`` — BATCH > 1 turns on LitServe's dynamic
batching with a 10 ms window. Each inference worker gets one torch thread, as TorchServe tuned does.
Binds 127.0.0.1 only.
"""

import json
import os
import sys
import tempfile
from typing import Any

import litserve as ls


class HandlerAPI(ls.LitAPI):  # type: ignore[misc]
    def __init__(self, archive: str, batch: int) -> None:
        super().__init__(max_batch_size=batch, batch_timeout=0.01 if batch > 1 else 0.0)
        self.archive = archive

    def setup(self, device: str) -> None:
        import torch

        torch.set_num_threads(1)
        from ts_notebook.deploy.runtime import HandlerRuntime

        work = tempfile.mkdtemp(prefix="tsb-ls-")
        self.runtime = HandlerRuntime(self.archive, batch_size=self.max_batch_size, work_dir=work)

    def decode_request(self, request):  # type: ignore[no-untyped-def]  # unannotated: LitServe passes the JSON body
        # TorchServe hands the handler the JSON body already parsed: the same row here.
        from ts_notebook.handler.payload import Request

        headers = {"Content-Type": "application/json", "body": {"content-type": "application/json"}}
        return Request({"body": request}, headers)

    def batch(self, inputs: list[Any]) -> list[Any]:
        return inputs

    def predict(self, x: Any) -> Any:
        requests = x if isinstance(x, list) else [x]
        answers = self.runtime.handle(requests)
        bodies = [json.loads(a.body) for a in answers]
        return bodies if isinstance(x, list) else bodies[0]

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def encode_response(self, output: Any) -> Any:
        return output


def main() -> None:
    archive, port, workers, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    os.environ["OMP_NUM_THREADS"] = "1"
    server = ls.LitServer(HandlerAPI(archive, batch), accelerator="cpu", workers_per_device=workers, timeout=60)
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
