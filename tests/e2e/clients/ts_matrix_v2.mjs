// The interoperability matrix through the TypeScript SDK v2 client, in either protocol era.
//
// usage: node ts_matrix_v2.mjs PLAN stdio COMMAND [ARGS...]
//        node ts_matrix_v2.mjs PLAN http URL
// PLAN and the printed report are described in ts_matrix_plan.mjs; `plan.negotiation` is the
// client's version negotiation mode: "legacy" (its default, the handshake era) or "auto" (probe
// with `server/discover`, which selects 2026-07-28 on a server that speaks it).

import process from "node:process";

import { ChangeCounter, NODE_MODULES, answerers, finish, parseArgs, runPlan } from "./ts_matrix_plan.mjs";

const PACKAGE = new URL("@modelcontextprotocol/client/dist/", NODE_MODULES);
const { Client, StreamableHTTPClientTransport } = await import(new URL("index.mjs", PACKAGE).href);
const { StdioClientTransport } = await import(new URL("stdio.mjs", PACKAGE).href);

// The stateless era, where change notifications arrive only on a `subscriptions/listen` stream.
const MODERN_ERA = "modern";

function transportFor(kind, target) {
  if (kind === "stdio") {
    const [command, ...args] = target;
    // As in v1, the child gets only a few variables unless told otherwise.
    return new StdioClientTransport({ command, args, env: { ...process.env }, stderr: "inherit" });
  }
  return new StreamableHTTPClientTransport(new URL(target[0]));
}

async function main() {
  const { plan, kind, target } = parseArgs(process.argv.slice(2));
  const seen = { client: "typescript-sdk-v2", transport: kind, errors: {} };
  const answer = answerers(plan, seen);
  const counter = new ChangeCounter();
  const client = new Client(
    { name: "quiver-interop-matrix", version: "1.0.0" },
    {
      capabilities: { sampling: {}, elicitation: {} },
      versionNegotiation: { mode: plan.negotiation },
    },
  );
  client.setRequestHandler("sampling/createMessage", (request) => answer.sample(request.params));
  client.setRequestHandler("elicitation/create", (request) => answer.elicit(request.params));
  client.setNotificationHandler("notifications/tools/list_changed", () => counter.seen());
  const options = { timeout: plan.requestTimeoutMs };
  try {
    await client.connect(transportFor(kind, target), options);
    seen.server = client.getServerVersion();
    seen.protocolVersion = client.getNegotiatedProtocolVersion();
    seen.era = client.getProtocolEra();
    const modern = seen.era === MODERN_ERA;
    await runPlan({
      plan,
      seen,
      counter,
      hooks: {
        listTools: () => client.listTools(undefined, { ...options, cacheMode: "bypass" }),
        callTool: (name, args) => client.callTool({ name, arguments: args }, options),
        listen: modern ? () => client.listen({ toolsListChanged: true }, options) : undefined,
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
