// Drive an MCP server across a restart with an official TypeScript client, one mode per run,
// in step with the caller: one JSON line per phase on stdout, the caller's lines on stdin.
//
//     node restart.mjs URL FLAVOR MODE
//
// FLAVOR is which official package connects:
//   sdk      @modelcontextprotocol/sdk 1.x (the conformance harness's pinned client)
//   client   @modelcontextprotocol/client 2.x (pinned by ./package-lock.json)
// MODE is how:
//   legacy     Streamable HTTP with a session (initialize); it must go on after the restart
//   stateless  (client only) 2026-07-28 pinned: no session at all
//   sse        the 2024-11-05 HTTP+SSE transport (URL is the SSE endpoint); its session is its
//              connection and ends with it: a new client must connect cleanly afterwards
//   pool       POOL clients with sessions calling tools in a loop across the restart
//   cut        legacy, with a call streaming progress when the stop comes: it ends with the
//              terminal error, and the next call, made at once on the same client (and its
//              pooled connection), must succeed
//
// Phases: after connecting it prints {"phase": "connected", ...} and reads one line; the
// caller restarts the server and writes "restarted"; then it does the rest (calls on the old
// client, a list change, a fresh client) and prints {"phase": "done", ...}. A failed step is
// recorded as {"error": "..."} under its name. Exit status 0 once it printed "done".
// Every fetch is Node's own (undici), which pools keep-alive connections: that is the point.

import { createInterface } from 'node:readline';

const STEP_TIMEOUT_MS = 20_000;
const NOTICE_TIMEOUT_MS = 20_000;
const POOL = 6;
const POOL_CALLS_AFTER = 10;

async function load(flavor) {
  if (flavor === 'client') {
    const m = await import('@modelcontextprotocol/client');
    return {
      make: (name, mode) =>
        new m.Client(
          { name, version: '1.0.0' },
          {
            capabilities: {},
            versionNegotiation: mode === 'stateless' ? { mode: { pin: '2026-07-28' } } : undefined,
          },
        ),
      Streamable: m.StreamableHTTPClientTransport,
      Sse: m.SSEClientTransport,
      onToolsChanged: (client, handler) =>
        client.setNotificationHandler('notifications/tools/list_changed', handler),
      call: (client, params, options) =>
        client.callTool(params, { timeout: STEP_TIMEOUT_MS, ...options }),
    };
  }
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { StreamableHTTPClientTransport } = await import(
    '@modelcontextprotocol/sdk/client/streamableHttp.js'
  );
  const { SSEClientTransport } = await import('@modelcontextprotocol/sdk/client/sse.js');
  const types = await import('@modelcontextprotocol/sdk/types.js');
  return {
    make: (name) => new Client({ name, version: '1.0.0' }, { capabilities: {} }),
    Streamable: StreamableHTTPClientTransport,
    Sse: SSEClientTransport,
    onToolsChanged: (client, handler) =>
      client.setNotificationHandler(types.ToolListChangedNotificationSchema, handler),
    call: (client, params, options) =>
      client.callTool(params, types.CallToolResultSchema, { timeout: STEP_TIMEOUT_MS, ...options }),
  };
}

function describe(error) {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const cause = error?.cause ? ` (cause: ${error.cause.code ?? error.cause.message ?? error.cause})` : '';
  return { error: text + cause };
}

async function attempt(run) {
  try {
    return await run();
  } catch (error) {
    return describe(error);
  }
}

function print(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

function lines() {
  const reader = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  return async () => {
    const { value, done } = await reader.next();
    return done ? null : value.trim();
  };
}

async function connect(sdk, url, mode, name, errors) {
  const client = sdk.make(name, mode);
  const transport = mode === 'sse' ? new sdk.Sse(new URL(url)) : new sdk.Streamable(new URL(url));
  await client.connect(transport, { timeout: STEP_TIMEOUT_MS });
  client.onerror = (error) => errors.push(describe(error).error);
  return { client, transport };
}

const echo = (sdk, client, text) =>
  sdk.call(client, { name: 'echo', arguments: { text } }).then((result) => result.content[0].text);

function waitFor(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function one(sdk, url, mode, next) {
  const errors = [];
  const out = { mode };
  let toolsChanged;
  const changed = new Promise((resolve) => (toolsChanged = resolve));
  const transportMode = mode === 'cut' ? 'legacy' : mode;
  const { client, transport } = await connect(sdk, url, transportMode, `mcpd-restart-${mode}`, errors);
  sdk.onToolsChanged(client, () => toolsChanged(true));
  out.sessionId = transport.sessionId ?? null;
  out.before = await attempt(() => echo(sdk, client, 'before'));
  if (mode === 'cut') {
    let started;
    const streaming = new Promise((resolve) => (started = resolve));
    const slow = { name: 'slow', arguments: { seconds: 60, tag: 'ts-restart-cut' } };
    const cut = attempt(() => sdk.call(client, slow, { onprogress: () => started() }));
    await waitFor(streaming, STEP_TIMEOUT_MS, 'progress');
    print({ phase: 'connected', ...out });
    out.cut = await cut;
    out.next = await attempt(() => echo(sdk, client, 'next'));
  } else {
    print({ phase: 'connected', ...out });
  }
  if ((await next()) !== 'restarted') return 2;

  out.after = await attempt(() => echo(sdk, client, 'after'));
  out.read = await attempt(() =>
    client
      .readResource({ uri: 'fixture://text' }, { timeout: STEP_TIMEOUT_MS })
      .then((r) => r.contents[0].text),
  );
  if (transportMode === 'legacy') {
    out.announce = await attempt(() =>
      sdk.call(client, { name: 'announce', arguments: { kind: 'tools' } }),
    );
    out.toolsChanged = await attempt(() => waitFor(changed, NOTICE_TIMEOUT_MS, 'list change'));
  }
  out.sessionIdAfter = transport.sessionId ?? null;
  // A client connecting after the restart, in the same process (the same fetch pool): it
  // must not be handed a connection the old daemon ended.
  out.fresh = await attempt(async () => {
    const fresh = await connect(sdk, url, transportMode, `mcpd-restart-${mode}-fresh`, errors);
    const text = await echo(sdk, fresh.client, 'fresh');
    fresh.client.onerror = () => {}; // closing aborts its GET stream: not a transport error
    await fresh.client.close();
    return text;
  });
  out.transportErrors = errors.splice(0);
  print({ phase: 'done', ...out });
  await attempt(async () => {
    if (transport.sessionId !== undefined) await transport.terminateSession();
    await client.close();
  });
  return 0;
}

async function pool(sdk, url, next) {
  const errors = [];
  const clients = [];
  for (let n = 0; n < POOL; n += 1) {
    clients.push((await connect(sdk, url, 'legacy', `mcpd-restart-pool-${n}`, errors)).client);
  }
  let restarted = false;
  const failures = [];
  let calls = 0;
  const loop = async (client, n) => {
    let after = 0;
    for (let i = 0; after < POOL_CALLS_AFTER; i += 1) {
      const text = `${n}-${i}`;
      const seen = await attempt(() => echo(sdk, client, text));
      calls += 1;
      if (seen !== text) failures.push({ client: n, call: i, seen });
      if (restarted) after += 1;
    }
  };
  const running = clients.map(loop);
  print({ phase: 'connected', clients: clients.length });
  if ((await next()) !== 'restarted') return 2;
  restarted = true;
  await Promise.all(running);
  print({ phase: 'done', calls, failures, transportErrors: errors.splice(0) });
  for (const client of clients) await attempt(() => client.close());
  return 0;
}

async function main([url, flavor, mode]) {
  if (!url || !['sdk', 'client'].includes(flavor)) {
    process.stderr.write('usage: node restart.mjs URL (sdk | client) (legacy | stateless | sse | pool | cut)\n');
    return 2;
  }
  const sdk = await load(flavor);
  const next = lines();
  if (mode === 'pool') return pool(sdk, url, next);
  if (['legacy', 'stateless', 'sse', 'cut'].includes(mode)) return one(sdk, url, mode, next);
  process.stderr.write(`unknown mode ${mode}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (error) => {
    process.stderr.write(`${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
