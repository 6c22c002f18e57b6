// A real OpenID provider (oidc-provider, OpenID certified) for the SSO tests.
// usage: node provider.mjs STATE.json
// STATE.json: {"port": N, "clients": [...], "accounts": {"ann": {"password": "...",
// "email": "...", "groups": [...]}}}. Accounts are read again on every lookup, so a
// test changes someone's groups (or removes them) by rewriting the file.
// Login is a small form of our own that checks the password (devInteractions
// would accept any); consent is granted for what was asked.
import fs from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const statePath = process.argv[2];
const state = () => JSON.parse(fs.readFileSync(statePath, 'utf8'));
const { port, clients } = state();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients,
  pkce: { required: () => true, methods: ['S256'] },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
  },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  conformIdTokenClaims: false,
  // Refresh tokens for the membership re-check, without offline_access.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  async findAccount(ctx, id) {
    const a = state().accounts[id];
    if (!a) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: id, email: a.email, groups: a.groups };
      },
    };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['dockgate-test-only'] },
  ttl: { AccessToken: 600, IdToken: 600, RefreshToken: 86400, DeviceCode: 600, Interaction: 600, Session: 600, Grant: 86400 },
});
provider.proxy = false;

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const body = (req) => new Promise((resolve) => {
  let b = '';
  req.on('data', (c) => { b += c; });
  req.on('end', () => resolve(new URLSearchParams(b)));
});
const page = (res, status, html) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><body>${html}</body></html>`);
};

const callback = provider.callback();
http.createServer(async (req, res) => {
  const m = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
  if (!m) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    const uid = details.uid;
    if (req.method === 'GET' && details.prompt.name === 'login') {
      // "autologin" in the state file: the page fills and submits itself, so a
      // headless browser without a driver completes the flow.
      const auto = state().autologin;
      const script = auto ? `<script>const f = document.forms[0];
f.login.value = ${JSON.stringify(auto.login)}; f.password.value = ${JSON.stringify(auto.password)};
f.submit();</script>` : '';
      return page(res, 200, `<h1>Test IdP sign-in</h1>
<form method="post" action="/interaction/${esc(uid)}/login">
<input name="login" placeholder="user"><input name="password" type="password">
<button type="submit">Sign in</button></form>${script}`);
    }
    if (req.method === 'POST' && m[2]) {
      const f = await body(req);
      const a = state().accounts[f.get('login')];
      if (!a || a.password !== f.get('password')) {
        return page(res, 403, '<p id="error">wrong user or password</p>');
      }
      return provider.interactionFinished(req, res, { login: { accountId: f.get('login') } },
        { mergeWithLastSubmission: false });
    }
    if (details.prompt.name === 'consent') {
      const { prompt: { details: d }, params, session } = details;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      if (d.missingResourceScopes) {
        for (const [ind, sc] of Object.entries(d.missingResourceScopes)) grant.addResourceScope(ind, sc.join(' '));
      }
      const grantId = await grant.save();
      return provider.interactionFinished(req, res, { consent: { grantId } },
        { mergeWithLastSubmission: true });
    }
    return page(res, 400, 'unexpected interaction');
  } catch (e) {
    return page(res, 500, esc(e.message));
  }
}).listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
