"""``engram-mcp`` (also ``python -m engram_client.mcp``): serve Engram's memory to an agent host."""

from __future__ import annotations

import argparse
import logging
import sys

USAGE_ERROR = 2

EPILOG = """\
environment:
  ENGRAM_URL, ENGRAM_API_KEY    the Engram API and its key (as for every Engram client)
  ENGRAM_MCP_NAMESPACE          namespace the tools use when a call names none
  ENGRAM_MCP_AGENT              agent the tools use when a call names none
  ENGRAM_MCP_TRANSPORT          stdio (default) or http
  ENGRAM_MCP_HOST, _PORT, _PATH where streamable HTTP listens (127.0.0.1, 8765, /mcp)
  ENGRAM_MCP_TOKEN              bearer token HTTP clients must send; required beyond 127.0.0.1
  ENGRAM_MCP_TIMEOUT_SECONDS    per request to the API (30)
  ENGRAM_MCP_LOG_LEVEL          on stderr (WARNING)
Options given on the command line win over the environment."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engram-mcp", description=(
        "Serve Engram's memory (append, integrate, recall, context, list, forget, redact) to agent hosts over "
        "the Model Context Protocol, as a client of Engram's HTTP API."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transport", choices=("stdio", "http"), help="stdio for desktop hosts, http for remote agents")
    p.add_argument("--host", help="HTTP: address to listen on (default 127.0.0.1)")
    p.add_argument("--port", help="HTTP: port (default 8765)")
    p.add_argument("--path", help="HTTP: path of the MCP endpoint (default /mcp)")
    p.add_argument("--url", help="the Engram API (default ENGRAM_URL, else http://127.0.0.1:8000)")
    p.add_argument("--namespace", help="default namespace (ENGRAM_MCP_NAMESPACE)")
    p.add_argument("--agent", help="default agent (ENGRAM_MCP_AGENT)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default), ERROR")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from engram_client.mcp.settings import McpSettings, SettingsError  # needs no MCP SDK

    try:
        settings = McpSettings.load(transport=args.transport, host=args.host, port=args.port, path=args.path,
                                    url=args.url, namespace=args.namespace, agent=args.agent,
                                    log_level=args.log_level)
    except SettingsError as exc:
        print(f"engram-mcp: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        from engram_client.mcp.server import build_server
        from engram_client.mcp.transports import run_http, run_stdio
    except ImportError as exc:
        print(f"engram-mcp: the MCP SDK is not installed ({exc}); install the extra: pip install './client[mcp]'",
              file=sys.stderr)
        return USAGE_ERROR
    # On stderr, one line per record (stdout is the stdio transport's); set before the SDK's own, which
    # then changes nothing.
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = build_server(settings)
    try:
        if settings.transport == "http":
            run_http(server, settings)
        else:
            run_stdio(server)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
