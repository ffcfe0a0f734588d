// A local OpenID Connect provider for the browser suite, speaking the authorization code flow
// as Keycloak does: discovery, an authorization endpoint that signs the configured citizen in at
// once (no login form) and redirects back with a one-time code, a token endpoint that insists on
// the PKCE verifier (S256), the redirect URI and the client, and answers an ES256 ID token with
// the request's nonce; its key set at /certs. node:crypto only.
import http from 'node:http';
import crypto from 'node:crypto';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** Starts the provider; resolves to { issuer, jwksUrl, stop() }. */
export async function startIdp({ citizen = { sub: 'citizen-4711', name: 'Erika Mustermann', email: 'erika@example.org' } } = {}) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'browser-1', alg: 'ES256', use: 'sig' };
  const grants = new Map();
  let issuer;

  const sign = (claims) => {
    const header = b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: jwk.kid }));
    const payload = b64url(JSON.stringify(claims));
    const signature = crypto.sign('sha256', Buffer.from(`${header}.${payload}`), {
      key: privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    return `${header}.${payload}.${b64url(signature)}`;
  };
  const json = (res, status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const server = http.createServer((req, res) => {
    const u = new URL(req.url, issuer);
    if (req.method === 'GET' && u.pathname === '/realms/buerger/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer,
        authorization_endpoint: `${issuer}/protocol/openid-connect/auth`,
        token_endpoint: `${issuer}/protocol/openid-connect/token`,
        jwks_uri: `${new URL(issuer).origin}/certs`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['ES256'],
        code_challenge_methods_supported: ['S256'],
      });
    }
    if (req.method === 'GET' && u.pathname === '/certs') return json(res, 200, { keys: [jwk] });
    if (req.method === 'GET' && u.pathname === '/realms/buerger/protocol/openid-connect/auth') {
      const q = u.searchParams;
      if (q.get('response_type') !== 'code' || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
        return json(res, 400, { error: 'invalid_request' });
      }
      const code = crypto.randomUUID();
      grants.set(code, {
        clientId: q.get('client_id'),
        redirectUri: q.get('redirect_uri'),
        challenge: q.get('code_challenge'),
        nonce: q.get('nonce'),
      });
      const back = new URL(q.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state') ?? '');
      res.writeHead(302, { location: back.href });
      return res.end();
    }
    if (req.method === 'POST' && u.pathname === '/realms/buerger/protocol/openid-connect/token') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        const f = new URLSearchParams(body);
        const grant = grants.get(f.get('code'));
        grants.delete(f.get('code'));
        const verifier = f.get('code_verifier') ?? '';
        const ok = grant
          && f.get('grant_type') === 'authorization_code'
          && b64url(crypto.createHash('sha256').update(verifier).digest()) === grant.challenge
          && f.get('redirect_uri') === grant.redirectUri
          && f.get('client_id') === grant.clientId;
        if (!ok) return json(res, 400, { error: 'invalid_grant' });
        const now = Math.floor(Date.now() / 1000);
        return json(res, 200, {
          access_token: 'browser-access-token',
          token_type: 'Bearer',
          expires_in: 300,
          id_token: sign({ iss: issuer, aud: grant.clientId, iat: now, exp: now + 600, nonce: grant.nonce, ...citizen }),
        });
      });
      return undefined;
    }
    res.writeHead(404);
    return res.end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}/realms/buerger`;
  return {
    issuer,
    jwksUrl: `http://127.0.0.1:${port}/certs`,
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}
