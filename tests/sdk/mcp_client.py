"""An MCP client built with the official Python SDK (mcp==2.3.0), for the gateway tests.

usage: python mcp_client.py URL SCENARIO [--header NAME=VALUE ...] [--mode legacy|modern]

--mode legacy (default): session.initialize(), the 2025-11-25 handshake with sessions.
--mode modern: session.discover(), 2026-07-28, stateless.

Scenarios (each prints ONE JSON object on stdout):
  list                  {"protocol": ..., "tools": [sorted names]}
  call:TOOL:JSONARGS    {"is_error", "text", "structured"} or {"error": {"code", "message"}}
  progress:N            slow_count(n=N) with a progress callback: {"progress": [...], "text": ...,
                        "first_progress_lead_s": seconds from the first progress to the answer}
  sequence              one session: list, add 2+3, delete_everything, add 4+5:
                        {"protocol", "tools", "results": [call results as above]}
  concurrent:N          N sessions at once, each lists tools and echoes its own text:
                        {"ok": sessions that got exactly their own answer, "n": N, "errors": [...]}

An MCP error answer (a JSON-RPC error, raised by the SDK as mcp.MCPError) is a result, exit 0;
anything unexpected exits non-zero with the traceback on stderr.
"""

import argparse
import asyncio
import json
import sys
import time
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="MCP SDK client for the gateway tests")
    p.add_argument("url")
    p.add_argument("scenario")
    p.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--mode", choices=["legacy", "modern"], default="legacy")
    args = p.parse_args(argv)
    headers = {}
    for h in args.header:
        name, sep, value = h.partition("=")
        if not sep or not name:
            p.error(f"--header wants NAME=VALUE, got {h!r}")
        headers[name] = value
    args.headers = headers
    return args


@asynccontextmanager
async def open_session(url: str, headers: dict[str, str], mode: str):
    # mcp 2.x takes custom headers only through a caller-provided httpx2 client.
    timeout = httpx2.Timeout(30.0, read=120.0)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                if mode == "modern":
                    await session.discover()
                else:
                    await session.initialize()
                yield session


def error_obj(e: MCPError) -> dict[str, Any]:
    return {"error": {"code": e.code, "message": e.message}}


def result_obj(res: Any) -> dict[str, Any]:
    text = None
    for block in res.content or []:
        if getattr(block, "type", None) == "text":
            text = block.text
            break
    return {"is_error": bool(res.is_error), "text": text, "structured": res.structured_content}


async def call(session: ClientSession, name: str, arguments: dict[str, Any], **kw: Any) -> dict[str, Any]:
    try:
        return result_obj(await session.call_tool(name, arguments, **kw))
    except MCPError as e:
        return error_obj(e)


async def tool_names(session: ClientSession) -> list[str]:
    return sorted(t.name for t in (await session.list_tools()).tools)


async def scenario_list(args) -> dict[str, Any]:
    async with open_session(args.url, args.headers, args.mode) as s:
        try:
            tools = await tool_names(s)
        except MCPError as e:
            return {"protocol": s.protocol_version, **error_obj(e)}
        return {"protocol": s.protocol_version, "tools": tools}


async def scenario_call(args, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async with open_session(args.url, args.headers, args.mode) as s:
        return await call(s, name, arguments)


async def scenario_progress(args, n: int) -> dict[str, Any]:
    progress: list[float] = []
    first: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        if not first:
            first.append(time.monotonic())
        progress.append(value)

    async with open_session(args.url, args.headers, args.mode) as s:
        started = time.monotonic()
        out = await call(s, "slow_count", {"n": n}, progress_callback=on_progress)
        done = time.monotonic()
    # Seconds from the first progress event to the answer: a stream held
    # back until the end would make it about 0.
    lead = done - first[0] if first else 0.0
    return {"progress": progress, "first_progress_lead_s": round(lead, 3), "total_s": round(done - started, 3), **out}


async def scenario_sequence(args) -> dict[str, Any]:
    async with open_session(args.url, args.headers, args.mode) as s:
        try:
            tools: Any = await tool_names(s)
        except MCPError as e:
            tools = error_obj(e)
        results = [
            await call(s, "add", {"a": 2, "b": 3}),
            await call(s, "delete_everything", {"confirm": True}),
            await call(s, "add", {"a": 4, "b": 5}),
        ]
        return {"protocol": s.protocol_version, "tools": tools, "results": results}


async def scenario_concurrent(args, n: int) -> dict[str, Any]:
    async def one(i: int) -> bool:
        text = f"session-{i}-{id(object())}"
        async with open_session(args.url, args.headers, args.mode) as s:
            await s.list_tools()
            res = await s.call_tool("echo", {"text": text})
            got = result_obj(res)
            return not got["is_error"] and got["text"] == text

    outcomes = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    errors = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    return {"ok": sum(1 for o in outcomes if o is True), "n": n, "errors": errors}


async def run(args) -> dict[str, Any]:
    kind, _, rest = args.scenario.partition(":")
    if kind == "list":
        return await scenario_list(args)
    if kind == "call":
        name, sep, raw = rest.partition(":")
        if not name:
            raise SystemExit("call scenario wants call:TOOL[:JSONARGS]")
        return await scenario_call(args, name, json.loads(raw) if sep and raw else {})
    if kind == "progress":
        return await scenario_progress(args, int(rest or "5"))
    if kind == "sequence":
        return await scenario_sequence(args)
    if kind == "concurrent":
        return await scenario_concurrent(args, int(rest or "10"))
    raise SystemExit(f"unknown scenario {args.scenario!r}")


def main() -> None:
    args = parse_args(sys.argv[1:])
    out = asyncio.run(run(args))
    print(json.dumps(out, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
