// One official TypeScript client across a daemon restart: the client half of
// tests/interop/restart_matrix.py, with the same phases as restart_matrix_drivers.py.
//
//     node restart_matrix.mjs URL FLAVOR MODE
//
// FLAVOR: sdk (@modelcontextprotocol/sdk 1.x, the conformance harness's pinned client) or
// client (@modelcontextprotocol/client 2.x, pinned by ./package-lock.json).
// MODE: legacy (Streamable HTTP with a session), sse (2024-11-05 HTTP+SSE; URL is the SSE
// endpoint), stateless (client only: 2026-07-28 pinned).
//
// Connect, list the tools, call echo ("before"), print {"phase": "connected", ...}; read one
// line ("restarted": the caller restarted the daemon meanwhile); call echo ("after") on the
// SAME client, print {"phase": "done", ...}; close. Nothing is retried here. Every fetch
// (method, path, session id, status) and every transport error is recorded per phase.

import { createInterface } from 'node:readline';

const STEP_TIMEOUT_MS = 20_000;
const MAX_RECORDS = 40;

let http = [];
let logs = [];
const take = () => {
  const taken = { http: http.slice(0, MAX_RECORDS), logs: logs.slice(0, MAX_RECORDS) };
  http = [];
  logs = [];
  return taken;
};

// The JSON-RPC method a request carries ("response" for an answer to the server).
function rpcMethod(body) {
  if (typeof body !== 'string') return null;
  try {
    const message = JSON.parse(body);
    return message?.method ?? (message && typeof message === 'object' ? 'response' : null);
  } catch {
    return null;
  }
}

// Both packages call the global fetch at request time: wrap it to see what was sent.
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  // Read what is sent without building a Request (that could consume a streamed body).
  const headers = new Headers(init.headers ?? input?.headers);
  const target = new URL(typeof input === 'string' ? input : (input.href ?? input.url));
  const entry = {
    method: init.method ?? input?.method ?? 'GET',
    path: target.pathname,
    query: target.search.slice(1) || null,
    session: headers.get('mcp-session-id'),
    protocol: headers.get('mcp-protocol-version'),
    rpc: rpcMethod(init.body),
    status: null,
    sentMs: Math.round(performance.now()),
  };
  http.push(entry);
  try {
    const response = await realFetch(input, init);
    entry.status = response.status;
    entry.answeredMs = Math.round(performance.now());
    return response;
  } catch (error) {
    entry.status = `raised ${describe(error).error}`;
    throw error;
  }
};

async function load(flavor) {
  if (flavor === 'client') {
    const m = await import('@modelcontextprotocol/client');
    return {
      make: (mode) =>
        new m.Client(
          { name: `mcpd-restart-matrix-${mode}`, version: '1.0.0' },
          {
            capabilities: {},
            versionNegotiation: mode === 'stateless' ? { mode: { pin: '2026-07-28' } } : undefined,
          },
        ),
      Streamable: m.StreamableHTTPClientTransport,
      Sse: m.SSEClientTransport,
      call: (client, params) => client.callTool(params, { timeout: STEP_TIMEOUT_MS }),
    };
  }
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { StreamableHTTPClientTransport } = await import(
    '@modelcontextprotocol/sdk/client/streamableHttp.js'
  );
  const { SSEClientTransport } = await import('@modelcontextprotocol/sdk/client/sse.js');
  const types = await import('@modelcontextprotocol/sdk/types.js');
  return {
    make: (mode) =>
      new Client({ name: `mcpd-restart-matrix-${mode}`, version: '1.0.0' }, { capabilities: {} }),
    Streamable: StreamableHTTPClientTransport,
    Sse: SSEClientTransport,
    call: (client, params) =>
      client.callTool(params, types.CallToolResultSchema, { timeout: STEP_TIMEOUT_MS }),
  };
}

function describe(error) {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const cause = error?.cause ? ` (cause: ${error.cause.code ?? error.cause.message ?? error.cause})` : '';
  const code = error?.code !== undefined ? ` [code ${error.code}]` : '';
  return { error: text + code + cause };
}

async function attempt(run) {
  try {
    return await run();
  } catch (error) {
    return describe(error);
  }
}

function emit(phase, fields) {
  process.stdout.write(JSON.stringify({ phase, ...fields }) + '\n');
}

function echo(sdk, client, text) {
  return sdk.call(client, { name: 'echo', arguments: { text } }).then((result) => {
    if (result.isError) throw new Error(`the tool call returned an error: ${JSON.stringify(result)}`);
    return result.content[0].text;
  });
}

async function main([url, flavor, mode]) {
  if (!url || !['sdk', 'client'].includes(flavor) || !['legacy', 'sse', 'stateless'].includes(mode)) {
    process.stderr.write('usage: node restart_matrix.mjs URL (sdk | client) (legacy | sse | stateless)\n');
    return 2;
  }
  const sdk = await load(flavor);
  const reader = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const client = sdk.make(mode);
  const transport = mode === 'sse' ? new sdk.Sse(new URL(url)) : new sdk.Streamable(new URL(url));
  try {
    await client.connect(transport, { timeout: STEP_TIMEOUT_MS });
  } catch (error) {
    emit('failed', { ...describe(error), ...take() });
    return 0;
  }
  client.onerror = (error) => logs.push(`transport error: ${describe(error).error}`);
  const tools = await attempt(() =>
    client.listTools({}, { timeout: STEP_TIMEOUT_MS }).then((r) => r.tools.map((t) => t.name).sort()),
  );
  const before = await attempt(() => echo(sdk, client, 'before'));
  emit('connected', { tools, before, session: transport.sessionId ?? null, ...take() });
  const { value } = await reader.next();
  if ((value ?? '').trim() !== 'restarted') {
    emit('aborted', { line: value ?? null });
    return 2;
  }
  const after = await attempt(() => echo(sdk, client, 'after'));
  emit('done', { after, session: transport.sessionId ?? null, ...take() });
  client.onerror = () => {};
  const closed = await attempt(() => client.close());
  emit('closed', { error: closed?.error ?? null });
  return 0;
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (error) => {
    process.stderr.write(`${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
