// The interoperability matrix through the TypeScript SDK v1 client (handshake era only).
//
// usage: node ts_matrix_v1.mjs PLAN stdio COMMAND [ARGS...]
//        node ts_matrix_v1.mjs PLAN http URL
// PLAN and the printed report are described in ts_matrix_plan.mjs.

import process from "node:process";

import { ChangeCounter, NODE_MODULES, answerers, finish, parseArgs, runPlan } from "./ts_matrix_plan.mjs";

const SDK = new URL("@modelcontextprotocol/sdk/dist/esm/", NODE_MODULES);
const { Client } = await import(new URL("client/index.js", SDK).href);
const { StdioClientTransport } = await import(new URL("client/stdio.js", SDK).href);
const { StreamableHTTPClientTransport } = await import(new URL("client/streamableHttp.js", SDK).href);
const { CreateMessageRequestSchema, ElicitRequestSchema, ToolListChangedNotificationSchema } = await import(
  new URL("types.js", SDK).href
);

function transportFor(kind, target) {
  if (kind === "stdio") {
    const [command, ...args] = target;
    // The SDK passes the child only a few variables unless told otherwise; the gateway needs the
    // caller's environment (its cache and state directories).
    return new StdioClientTransport({ command, args, env: { ...process.env }, stderr: "inherit" });
  }
  return new StreamableHTTPClientTransport(new URL(target[0]));
}

async function main() {
  const { plan, kind, target } = parseArgs(process.argv.slice(2));
  const seen = { client: "typescript-sdk-v1", transport: kind, errors: {} };
  const answer = answerers(plan, seen);
  const counter = new ChangeCounter();
  const client = new Client(
    { name: "quiver-interop-matrix", version: "1.0.0" },
    { capabilities: { sampling: {}, elicitation: {} } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, (request) => answer.sample(request.params));
  client.setRequestHandler(ElicitRequestSchema, (request) => answer.elicit(request.params));
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => counter.seen());
  const transport = transportFor(kind, target);
  // The client tells its transport the negotiated version; that is the only place v1 exposes it.
  const setProtocolVersion = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (version) => {
    seen.protocolVersion = version;
    setProtocolVersion?.(version);
  };
  const options = { timeout: plan.requestTimeoutMs };
  try {
    await client.connect(transport);
    seen.server = client.getServerVersion();
    await runPlan({
      plan,
      seen,
      counter,
      hooks: {
        listTools: () => client.listTools(undefined, options),
        callTool: (name, args) => client.callTool({ name, arguments: args }, undefined, options),
      },
    });
  } catch (error) {
    seen.errors.connect = String(error?.stack ?? error);
  } finally {
    await client.close();
  }
  return finish(seen);
}

process.exitCode = await main();
