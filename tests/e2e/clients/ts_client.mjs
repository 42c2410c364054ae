// An independent MCP client: the TypeScript SDK v1 walks search -> describe -> call through a gateway.
//
// usage: node ts_client.mjs PLAN stdio COMMAND [ARGS...]
//        node ts_client.mjs PLAN http URL
// PLAN is JSON: {"query": "...", "id": "backend.tool", "arguments": {...}}.
// Prints one JSON object with everything the client saw; on failure, the failing step and error
// (exit code 1), so the caller can show what went wrong.

import process from "node:process";

// The SDK is installed by `make setup` under tools/node, not beside this script.
const SDK = new URL("../../../tools/node/node_modules/@modelcontextprotocol/sdk/dist/esm/", import.meta.url);
const { Client } = await import(new URL("client/index.js", SDK).href);
const { StdioClientTransport } = await import(new URL("client/stdio.js", SDK).href);
const { StreamableHTTPClientTransport } = await import(new URL("client/streamableHttp.js", SDK).href);

function transportFor(kind, target) {
  if (kind === "stdio") {
    const [command, ...args] = target;
    // The SDK passes only a few variables (HOME, PATH, ...) unless told otherwise; the gateway
    // needs the caller's environment (its cache and state directories).
    return new StdioClientTransport({ command, args, env: { ...process.env }, stderr: "inherit" });
  }
  if (kind === "http") {
    return new StreamableHTTPClientTransport(new URL(target[0]));
  }
  throw new Error(`unknown transport ${JSON.stringify(kind)} (expected stdio or http)`);
}

async function main() {
  const [planJson, kind, ...target] = process.argv.slice(2);
  const plan = JSON.parse(planJson);
  const seen = { transport: kind };
  let step = "connect";
  const client = new Client({ name: "quiver-e2e-ts-client", version: "1.0.0" });
  const transport = transportFor(kind, target);
  // The client tells its transport the negotiated version; only the HTTP transport keeps it.
  const setProtocolVersion = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (version) => {
    seen.protocolVersion = version;
    setProtocolVersion?.(version);
  };
  try {
    await client.connect(transport);
    seen.server = client.getServerVersion();

    step = "tools/list";
    seen.tools = (await client.listTools()).tools.map((tool) => tool.name);

    step = "search_tools";
    seen.search = await client.callTool({ name: "search_tools", arguments: { query: plan.query } });

    step = "describe_tools";
    seen.describe = await client.callTool({ name: "describe_tools", arguments: { ids: [plan.id] } });

    step = "call_tool";
    seen.call = await client.callTool({
      name: "call_tool",
      arguments: { id: plan.id, arguments: plan.arguments },
    });
  } catch (error) {
    seen.failed = { step, error: String(error?.stack ?? error) };
  } finally {
    await client.close();
  }
  process.stdout.write(`${JSON.stringify(seen)}\n`);
  return seen.failed ? 1 : 0;
}

process.exitCode = await main();
