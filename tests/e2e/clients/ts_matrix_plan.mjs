// The interoperability matrix plan, shared by the TypeScript SDK v1 and v2 clients.
//
// A client script builds its SDK client and transport, then hands them to `runPlan` with a few
// hooks for what differs between SDK versions. The plan is JSON from the command line:
//
//   {"walk": {"query": "...", "id": "backend.tool", "arguments": {...}},
//    "listChanged": {"id": "backend.tool", "waitMs": 10000},
//    "calls": {"name": {"id": "backend.tool", "arguments": {...}}, ...},
//    "answers": {"sampling": "text", "elicitation": {"field": value, ...}},
//    "requestTimeoutMs": 30000, "negotiation": "legacy" | "auto"}
//
// Every step runs even when an earlier one failed; a failure is recorded under `errors[step]`, so
// one report shows the whole row of the matrix.

import process from "node:process";

export const NODE_MODULES = new URL("../../../tools/node/node_modules/", import.meta.url);

/** PLAN KIND TARGET...: KIND is stdio (TARGET is a command and its arguments) or http (a URL). */
export function parseArgs(argv) {
  const [planJson, kind, ...target] = argv;
  if (kind !== "stdio" && kind !== "http") {
    throw new Error(`unknown transport ${JSON.stringify(kind)} (expected stdio or http)`);
  }
  return { plan: JSON.parse(planJson), kind, target };
}

/** Fixed answers to what the gateway forwards; every question is recorded in `seen.asked`. */
export function answerers(plan, seen) {
  seen.asked = { sampling: [], elicitation: [] };
  return {
    sample(params) {
      seen.asked.sampling.push(params.messages.map((message) => message.content?.text ?? "").join("\n"));
      return {
        role: "assistant",
        model: "interop-matrix",
        content: { type: "text", text: plan.answers.sampling },
      };
    },
    elicit(params) {
      seen.asked.elicitation.push(params.message);
      const wanted = Object.keys(params.requestedSchema?.properties ?? {});
      const content = Object.fromEntries(
        Object.entries(plan.answers.elicitation).filter(([field]) => wanted.includes(field)),
      );
      return { action: "accept", content };
    },
  };
}

/** Counts `notifications/tools/list_changed`, and lets a step wait for the next one. */
export class ChangeCounter {
  constructor() {
    this.count = 0;
    this._waiters = [];
  }

  seen() {
    this.count += 1;
    for (const wake of this._waiters.splice(0)) wake();
  }

  async waitBeyond(count, ms) {
    const deadline = Date.now() + ms;
    while (this.count <= count && Date.now() < deadline) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this._waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.count > count;
  }
}

/**
 * Runs the plan. `hooks.listTools()` lists tools, `hooks.callTool(name, args)` calls one, and
 * `hooks.listen()` (2026-07-28 only) opens a `subscriptions/listen` stream and returns something
 * with `close()`. `seen.errors` must exist; each failed step adds its error there.
 */
export async function runPlan({ plan, seen, counter, hooks }) {
  const step = async (name, body) => {
    try {
      await body();
    } catch (error) {
      seen.errors[name] = String(error?.stack ?? error);
    }
  };
  const callTool = (name, args) => hooks.callTool(name, args);

  await step("walk", async () => {
    seen.tools = (await hooks.listTools()).tools.map((tool) => tool.name);
    seen.search = await callTool("search_tools", { query: plan.walk.query });
    seen.describe = await callTool("describe_tools", { ids: [plan.walk.id] });
    seen.call = await callTool("call_tool", { id: plan.walk.id, arguments: plan.walk.arguments });
  });

  await step("listChanged", async () => {
    const subscription = hooks.listen ? await hooks.listen() : null;
    try {
      const before = counter.count;
      seen.listChanged = { before };
      seen.listChanged.trigger = await callTool("call_tool", { id: plan.listChanged.id, arguments: {} });
      seen.listChanged.received = await counter.waitBeyond(before, plan.listChanged.waitMs);
      seen.listChanged.after = counter.count;
    } finally {
      await subscription?.close();
    }
  });

  seen.calls = {};
  for (const [key, { id, arguments: args }] of Object.entries(plan.calls)) {
    await step(key, async () => {
      seen.calls[key] = await callTool("call_tool", { id, arguments: args });
    });
  }
}

/** Prints the report; the exit code says whether the client could connect at all. */
export function finish(seen) {
  process.stdout.write(`${JSON.stringify(seen)}\n`);
  return seen.errors?.connect ? 1 : 0;
}
