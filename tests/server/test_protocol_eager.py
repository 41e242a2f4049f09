"""The HTTP server starts a request's coroutine by hand once its segment is parsed; when the
coroutine waits, a task carries it on (_carry_on). Results, errors and cancellation must pass
through exactly as in a task of its own; a request whose body comes in a later segment (or
byte by byte) is answered like one that came whole."""

import asyncio
import socket

import numpy as np
import pytest
from runnx.server.kserve import decode_infer_response, encode_infer_request
from runnx.server.protocol import _carry_on


async def _two_waits(fut1, fut2, log):
    log.append("start")
    a = await fut1
    log.append(a)
    try:
        b = await fut2
    except ValueError as e:
        return f"{a}+{e}"
    return a + b


def _start_by_hand(coro):
    waiting_on = coro.send(None)
    return asyncio.get_running_loop().create_task(_carry_on(coro, waiting_on))


def test_carry_on_passes_results_errors_and_cancellation():
    async def main():
        loop = asyncio.get_running_loop()
        log = []
        f1, f2 = loop.create_future(), loop.create_future()
        task = _start_by_hand(_two_waits(f1, f2, log))
        assert log == ["start"]
        f1.set_result("x")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert log == ["start", "x"]
        f2.set_exception(ValueError("bad"))
        assert await task == "x+bad"

        g1, g2 = loop.create_future(), loop.create_future()
        task = _start_by_hand(_two_waits(g1, g2, []))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert g1.cancelled()  # the cancellation reached the inner await

        async def sleeper():
            await asyncio.sleep(0)  # a bare yield goes through as well
            await asyncio.sleep(0.001)
            return 7
        coro = sleeper()
        assert await asyncio.get_running_loop().create_task(_carry_on(coro, coro.send(None))) == 7

    asyncio.run(main())


def test_body_in_later_segments_is_answered(http, server):
    x = np.random.default_rng(2).standard_normal((3, 64)).astype(np.float32)
    body, hl = encode_infer_request({"input": x}, binary_output=True)
    head = (b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            b"Inference-Header-Content-Length: %d\r\n\r\n" % (len(body), hl))
    expected = http.infer("mlp", {"input": x})[1]["outputs"]["output"]
    for pieces in ([head, body], [head + body[:7], body[7:]], [bytes([b]) for b in head + body]):
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for p in pieces:
                s.sendall(p)
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            top, _, rest = buf.partition(b"\r\n\r\n")
            fields = dict(line.split(b": ", 1) for line in top.split(b"\r\n")[1:])
            while len(rest) < int(fields[b"content-length"]):
                rest += s.recv(65536)
        assert top.startswith(b"HTTP/1.1 200"), top
        out = decode_infer_response(rest, int(fields[b"inference-header-content-length"]))
        np.testing.assert_allclose(out["outputs"]["output"], expected, rtol=1e-6)
