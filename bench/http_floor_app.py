"""A bare aiohttp server for the floor benchmark: ``POST /predict`` answers a fixed body, ``GET /ping``
answers 200. The HTTP round trip with no model and no worker, on the same stack as our front end.

``python http_floor_app.py PORT ANSWER_FILE`` — binds 127.0.0.1 only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web


def main() -> None:
    port, answer = int(sys.argv[1]), Path(sys.argv[2]).read_bytes()

    async def predict(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer)

    async def ping(request: web.Request) -> web.Response:
        return web.Response(body=b'{"status": "Healthy"}')

    app = web.Application()
    app.router.add_post("/predict", predict)
    app.router.add_get("/ping", ping)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
