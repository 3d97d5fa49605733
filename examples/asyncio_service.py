"""A small JSON-over-HTTP vector service on AsyncVecStore, plain asyncio.

Run: python examples/asyncio_service.py [STORE_PATH]

It starts the server on 127.0.0.1 (a free port), serves a client in the
same script (concurrent upserts that share group commits, a filtered query,
a get, a delete, an error), then stops.  No framework: asyncio.start_server
and a minimal HTTP/1.1 reader.  The routes:

    POST   /records           {"id", "vector", "metadata"?}  -> {"version"}
    GET    /records/{id}      -> {"id", "metadata", "version"} or 404
    DELETE /records/{id}      -> {"deleted": bool}
    POST   /query             {"vector", "k"?, "filter"?}    -> {"results": [...]}
    GET    /stats             -> {"count", "version", "commits"}

Every store call is awaited: reads run in worker threads and writes wait for
the store's writer thread, so the event loop keeps serving other requests
meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from vecstore import AsyncVecStore, Config, VecStoreError

# -- the service ---------------------------------------------------------------------


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, Any]:
    request_line = (await reader.readline()).decode("latin-1").strip()
    method, target, _version = request_line.split(" ", 2)
    length = 0
    while (line := (await reader.readline()).decode("latin-1").strip()):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = json.loads(await reader.readexactly(length)) if length else None
    return method, target, body


async def route(store: AsyncVecStore, method: str, path: str, body: Any) -> tuple[int, Any]:
    parts = [p for p in path.split("/") if p]
    if method == "POST" and parts == ["records"]:
        version = await store.upsert(body["id"], body["vector"], body.get("metadata"))
        return 200, {"version": version}
    if parts[:1] == ["records"] and len(parts) == 2:
        if method == "GET":
            rec = await store.get(parts[1])
            if rec is None:
                return 404, {"error": f"no record {parts[1]!r}"}
            return 200, {"id": rec.id, "metadata": rec.metadata, "version": rec.version}
        if method == "DELETE":
            return 200, {"deleted": await store.delete(parts[1])}
    if method == "POST" and parts == ["query"]:
        hits = await store.query(body["vector"], k=body.get("k", 5), filter=body.get("filter"))
        return 200, {"results": [{"id": h.id, "score": round(h.score, 4),
                                  "metadata": h.metadata} for h in hits]}
    if method == "GET" and parts == ["stats"]:
        return 200, {"count": await store.count(), "version": store.version,
                     "commits": store.commits}
    return 404, {"error": f"no route {method} {path}"}


def serve(store: AsyncVecStore) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, body = await read_request(reader)
            try:
                status, payload = await route(store, method, path, body)
            except (VecStoreError, KeyError, TypeError, ValueError) as exc:
                status, payload = 400, {"error": f"{type(exc).__name__}: {exc}"}
            data = json.dumps(payload).encode()
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                         + data)
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    return handle


# -- a client in the same script ---------------------------------------------------------


async def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body).encode() if body is not None else b""
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := (await reader.readline()).strip()):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    payload = json.loads(await reader.readexactly(length))
    writer.close()
    await writer.wait_closed()
    return status, payload


async def main(path: str) -> None:
    async with AsyncVecStore.open(path, Config(dim=4)) as store:
        server = await asyncio.start_server(serve(store), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        print("serving on 127.0.0.1 (a free port)")
        async with server:
            # 20 clients upsert at once: their writes share group commits
            colors = ["red", "green", "blue", "yellow"]
            answers = await asyncio.gather(*(
                call(port, "POST", "/records",
                     {"id": f"item-{i}", "vector": [1.0, i / 10, (i % 4) / 4, 0.5],
                      "metadata": {"color": colors[i % 4], "price": i}})
                for i in range(20)))
            assert all(status == 200 for status, _ in answers)
            _, stats = await call(port, "GET", "/stats")
            print(f"20 concurrent upserts -> {stats['count']} records at version "
                  f"{stats['version']}, in {stats['commits']} commit(s) (group commit)")

            _, found = await call(port, "POST", "/query",
                                  {"vector": [1.0, 0.3, 0.5, 0.5], "k": 3,
                                   "filter": "color = 'blue' AND price < 15"})
            print("query blue, price < 15:", [r["id"] for r in found["results"]])

            status, rec = await call(port, "GET", "/records/item-6")
            print(f"get item-6: {status} {rec['metadata']}")
            _, gone = await call(port, "DELETE", "/records/item-6")
            status, _ = await call(port, "GET", "/records/item-6")
            print(f"delete item-6: {gone['deleted']}; get again: {status}")
            status, err = await call(port, "POST", "/records",
                                     {"id": "bad", "vector": [1.0, 2.0]})
            print(f"upsert of a 2-d vector into a 4-d store: {status} "
                  f"{err['error'].split(':')[0]}")
        print("server stopped; store closed on leaving 'async with'")


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else str(Path(tempfile.mkdtemp()) / "svc.db")
    asyncio.run(main(target))
