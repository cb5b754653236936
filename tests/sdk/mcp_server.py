"""A real MCP server built with the official Python SDK (mcp==2.3.0), for the gateway tests.

usage: python mcp_server.py PORT [--stateless] [--json]

Serves streamable HTTP on http://127.0.0.1:PORT/mcp and prints `ready` once it accepts
connections. Stateful (sessions, SSE answers) by default; --stateless sets stateless_http,
--json sets json_response.

Environment:
  MCP_EXTRA_TOOLS=N  also registers tool_0 .. tool_{N-1}, each returning its own name.
  MCP_CALL_LOG=FILE  appends one JSON line {"tool": ..., "arguments": {...}} per tools/call
                     the server executes, so a test can prove a denied call never got here.
"""

import asyncio
import json
import os
import sys
import threading
from typing import Any

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings

_log_lock = threading.Lock()


class LoggingServer(MCPServer):
    """Logs every tools/call before running it (unknown tools included)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        path = os.environ.get("MCP_CALL_LOG")
        if path:
            line = json.dumps({"tool": name, "arguments": arguments}) + "\n"
            with _log_lock, open(path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
        return await super().call_tool(name, arguments, context)


mcp = LoggingServer("gateway-test")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@mcp.tool()
def delete_everything(confirm: bool) -> str:
    """Pretend to delete everything (exists so an ACL can deny it)."""
    return "deleted"


@mcp.tool()
async def slow_count(n: int, ctx: Context) -> str:
    """Send n progress notifications, ~50 ms apart, then answer."""
    for i in range(1, n + 1):
        await ctx.report_progress(i, n, f"step {i}")
        await asyncio.sleep(0.05)
    return f"counted {n}"


@mcp.tool()
def big(size: int) -> str:
    """Return a string of `size` bytes."""
    return "x" * size


@mcp.tool()
def whoami(ctx: Context) -> str:
    """The HTTP request headers this call arrived with: x-* and authorization."""
    headers = ctx.headers or {}
    seen = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith("x-") or lower == "authorization":
            seen[lower] = value
    return json.dumps(seen, sort_keys=True)


def _extra_tool(name: str):
    def tool() -> str:
        return name

    return tool


for _i in range(int(os.environ.get("MCP_EXTRA_TOOLS", "0") or 0)):
    _name = f"tool_{_i}"
    mcp.add_tool(_extra_tool(_name), name=_name, description=f"Extra tool {_i}.")


class ReadyServer(uvicorn.Server):
    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if self.started:
            print("ready", flush=True)


def main() -> None:
    args = sys.argv[1:]
    if not args or not args[0].isdigit():
        sys.exit(__doc__)
    port = int(args[0])
    app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http="--stateless" in args,
        json_response="--json" in args,
        # The gateway forwards Host 127.0.0.1:<gateway port>: no DNS-rebinding checks.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host="127.0.0.1",
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    ReadyServer(config).run()


if __name__ == "__main__":
    main()
