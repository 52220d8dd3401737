// A real OAuth 2.1 authorization server for mcpd's tests: oidc-provider (OpenID Certified),
// configured for the MCP flow. Run by tests/support/authorization_server.py:
//
//   node provider.mjs '<json options>'
//
// options: { resource, scopes, alg, login, clients } (see DEFAULTS). It listens on an
// ephemeral 127.0.0.1 port, then prints one JSON line {"issuer": "http://127.0.0.1:<port>"}.
//
// - Dynamic client registration is open (RFC 7591), as MCP clients expect.
// - PKCE (S256) is required for every authorization-code request.
// - Resource indicators (RFC 8707): the only resource is `resource` (also the default, like
//   an IdP with a fixed audience); access tokens for it are JWTs (RFC 9068) signed with `alg`
//   (RS256 or ES256) and carry `aud` = the resource.
// - No login page: an interaction logs in `login` and grants every requested scope, so an
//   authorization-code flow can be driven with plain HTTP redirects.
// - client_credentials is enabled for the pre-registered confidential clients in `clients`.
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const DEFAULTS = {
  resource: 'http://127.0.0.1:8765/mcp',
  scopes: ['probe:read', 'probe:write'],
  alg: 'ES256',
  login: 'alice',
  accessTokenTTL: 300,
  clients: [],
};
const options = { ...DEFAULTS, ...JSON.parse(process.argv[2] || '{}') };

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const keys = [
    { ...rsa, kid: 'rs256-1', alg: 'RS256', use: 'sig' },
    { ...ec, kid: 'es256-1', alg: 'ES256', use: 'sig' },
  ];
  // The key for the tokens' alg comes first: oidc-provider signs ID tokens with the first.
  return keys.sort((a, b) => (a.alg === options.alg ? -1 : b.alg === options.alg ? 1 : 0));
}

function configuration() {
  const scope = options.scopes.join(' ');
  return {
    clients: options.clients.map((client) => ({
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope,
      ...client,
    })),
    jwks: { keys: signingKeys() },
    scopes: ['openid', 'offline_access', ...options.scopes],
    cookies: { keys: [randomBytes(32).toString('hex')] },
    // Explicit lifetimes (seconds), which also keeps oidc-provider's notices off stdout.
    ttl: {
      AccessToken: options.accessTokenTTL,
      AuthorizationCode: 60,
      ClientCredentials: options.accessTokenTTL,
      Grant: 3600,
      IdToken: 300,
      Interaction: 600,
      RefreshToken: 3600,
      Session: 3600,
    },
    pkce: { required: () => true },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => options.resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator) => {
          if (indicator !== options.resource) throw new errors.InvalidTarget();
          return {
            scope,
            audience: options.resource,
            accessTokenTTL: options.accessTokenTTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: options.alg } },
          };
        },
      },
    },
  };
}

// Log in the configured account, then grant whatever the client asked for.
async function interact(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: options.login } });
    return;
  }
  const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
  if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  provider.on('server_error', (ctx, error) => console.error('server_error', error));
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interact(provider, req, res).catch((error) => {
        console.error('interaction failed', error);
        res.statusCode = 500;
        res.end(String(error));
      });
    } else {
      callback(req, res);
    }
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
