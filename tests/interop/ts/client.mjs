// Drive an MCP server with the official TypeScript SDK client, in one mode, and print one JSON
// object describing everything it saw on stdout.
//
//     node client.mjs URL MODE
//
// MODE is how the client connects:
//   legacy      Streamable HTTP, the client's default (no versionNegotiation): initialize
//   auto        Streamable HTTP, versionNegotiation auto: server/discover, else initialize
//   2026-07-28  Streamable HTTP, versionNegotiation pinned to 2026-07-28 (no fallback)
//   sse         the 2024-11-05 HTTP+SSE transport (URL is then the server's SSE endpoint)
//
// By hand: `npm ci` here (the lockfile pins every package), start a daemon, then run this.
// The tests (../test_ts_sdk_client.py) install the same packages into a cache instead.
//
// Every step runs even when an earlier one failed: a failed step is recorded as
// {"error": "..."} under its name, so the caller can tell exactly what went wrong. The exit
// status is 0 when the script ran to the end (whatever the steps' outcomes), 1 when it could
// not connect, 2 on bad arguments.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import {
  Client,
  SSEClientTransport,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';

const MODES = ['legacy', 'auto', '2026-07-28', 'sse'];
const STEP_TIMEOUT_MS = 20_000; // per request; the caller bounds the whole run as well

function sdkVersion() {
  const require = createRequire(import.meta.url);
  const entry = require.resolve('@modelcontextprotocol/client');
  // .../node_modules/@modelcontextprotocol/client/dist/index.cjs -> its package.json
  const manifest = join(dirname(dirname(entry)), 'package.json');
  return JSON.parse(readFileSync(manifest, 'utf8')).version;
}

function negotiation(mode) {
  if (mode === 'auto') return { mode: 'auto' };
  if (mode === '2026-07-28') return { mode: { pin: '2026-07-28' } };
  return undefined; // legacy and sse: the client's default, a plain initialize
}

function describe(error) {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const code = error && typeof error === 'object' && 'code' in error ? error.code : undefined;
  return code === undefined ? { error: text } : { error: text, code };
}

async function main(argv) {
  const [url, mode, bearer] = argv;
  if (!url || !MODES.includes(mode)) {
    process.stderr.write(`usage: node client.mjs URL (${MODES.join(' | ')}) [BEARER-TOKEN]\n`);
    return 2;
  }
  // A static API key, sent as a header on every request (the way users configure one).
  const requestInit = bearer ? { headers: { Authorization: `Bearer ${bearer}` } } : undefined;

  // What the server asked of the client, as the handlers saw it.
  const asked = { elicitation: [], sampling: [], roots: 0 };
  const client = new Client(
    { name: `mcpd-interop-ts-${mode}`, version: '1.0.0' },
    {
      capabilities: { elicitation: {}, sampling: {}, roots: {} },
      versionNegotiation: negotiation(mode),
    },
  );
  client.setRequestHandler('elicitation/create', async (request) => {
    asked.elicitation.push({
      message: request.params.message,
      requestedSchema: request.params.requestedSchema,
    });
    return { action: 'accept', content: { name: 'Grace' } };
  });
  client.setRequestHandler('sampling/createMessage', async (request) => {
    asked.sampling.push({
      messages: request.params.messages,
      maxTokens: request.params.maxTokens,
      systemPrompt: request.params.systemPrompt,
    });
    return {
      role: 'assistant',
      model: 'interop-model',
      content: { type: 'text', text: 'hello from the TypeScript client' },
    };
  });
  client.setRequestHandler('roots/list', async () => {
    asked.roots += 1;
    return { roots: [{ uri: 'file:///work/ts', name: 'work' }] };
  });

  const transport =
    mode === 'sse'
      ? new SSEClientTransport(new URL(url))
      : new StreamableHTTPClientTransport(new URL(url), { requestInit });
  const transportErrors = [];
  const out = { sdk: sdkVersion(), node: process.versions.node, mode, url };
  const options = { timeout: STEP_TIMEOUT_MS };

  try {
    await client.connect(transport, options);
  } catch (error) {
    out.connect = describe(error);
    process.stdout.write(JSON.stringify(out) + '\n');
    return 1;
  }
  client.onerror = (error) => transportErrors.push(describe(error).error);
  out.connect = {
    protocolVersion: client.getNegotiatedProtocolVersion() ?? null,
    era: client.getProtocolEra() ?? null,
    serverInfo: client.getServerVersion() ?? null,
    capabilities: client.getServerCapabilities() ?? null,
    sessionId: transport.sessionId ?? null,
  };

  const step = async (name, run) => {
    try {
      out[name] = await run();
    } catch (error) {
      out[name] = describe(error);
    }
  };

  await step('tools', async () => {
    // The SDK's own walk over every page (listTools without a cursor aggregates them)...
    const all = await client.listTools(undefined, options);
    // ...and the same walk by hand, one tools/list request per page, to see the server's pages.
    const pages = [];
    let cursor;
    do {
      const params = cursor === undefined ? {} : { cursor };
      const page = await client.request({ method: 'tools/list', params }, options);
      pages.push(page.tools.map((tool) => tool.name));
      cursor = page.nextCursor;
    } while (cursor !== undefined && pages.length < 50);
    return { names: all.tools.map((tool) => tool.name), pages };
  });
  await step('echo', () => client.callTool({ name: 'echo', arguments: { text: 'hi from ts' } }, options));
  await step('add', () => client.callTool({ name: 'add', arguments: { a: 2, b: 5 } }, options));
  await step('fail', () => client.callTool({ name: 'fail', arguments: { message: 'nope' } }, options));
  await step('resources', async () => {
    const all = await client.listResources(undefined, options); // the SDK walks every page
    return { uris: all.resources.map((resource) => resource.uri) };
  });
  await step('read', () => client.readResource({ uri: 'fixture://text' }, options));
  await step('prompt', () =>
    client.getPrompt({ name: 'greet', arguments: { name: 'Ada', style: 'warm' } }, options),
  );
  await step('complete', () =>
    client.complete(
      {
        ref: { type: 'ref/prompt', name: 'greet' },
        argument: { name: 'style', value: 'f' },
      },
      options,
    ),
  );
  await step('ask_name', () => client.callTool({ name: 'ask_name', arguments: {} }, options));
  await step('ask_model', () =>
    client.callTool({ name: 'ask_model', arguments: { prompt: 'Say hello' } }, options),
  );
  await step('ask_roots', () => client.callTool({ name: 'ask_roots', arguments: {} }, options));
  await step('ask_three', () => client.callTool({ name: 'ask_three', arguments: {} }, options));
  out.asked = asked;

  // A Streamable HTTP session ends with DELETE; the other modes just close. Errors from here
  // on are the closing's own: over HTTP+SSE, closing aborts a POST (say, of a handler's answer)
  // whose 202 has not arrived yet even though the server already acted on it.
  out.transportErrors = transportErrors.splice(0);
  await step('close', async () => {
    const hadSession = transport.sessionId !== undefined;
    if (hadSession) await transport.terminateSession();
    await client.close();
    return { terminatedSession: hadSession };
  });
  out.closeErrors = transportErrors;
  process.stdout.write(JSON.stringify(out) + '\n');
  return 0;
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (error) => {
    process.stderr.write(`${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
