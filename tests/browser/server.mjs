// Starts the Amtsplatz server binary for the browser suite: 127.0.0.1 on a free port, a fresh
// SQLite data dir, the demo tenants of the repository's tenants/; stops it and removes the data.
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function serverBinary() {
  if (process.env.AMTSPLATZ_BIN) return process.env.AMTSPLATZ_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(homedir(), '.cache', 'amtsplatz-target');
  return path.join(target, 'debug', 'amtsplatz-test-server');
}

/**
 * Starts the server; resolves to { url, stop(), log() } once /readyz answers 200. With `idp`
 * ({ issuer, jwksUrl }), Musterstadt's citizens sign in there (a copy of tenants/ says so).
 */
export async function startServer({ timeoutMs = 60_000, idp } = {}) {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(`server binary not found: ${bin} (run \`cargo test --workspace --no-run\` first, or set AMTSPLATZ_BIN)`);
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), 'amtsplatz-browser-'));
  // An empty config file: a developer's ./amtsplatz.toml must not leak in.
  await writeFile(path.join(dataDir, 'amtsplatz.toml'), '');
  let tenantsDir = path.join(repoRoot, 'tenants');
  if (idp) {
    tenantsDir = path.join(dataDir, 'tenants');
    await cp(path.join(repoRoot, 'tenants'), tenantsDir, { recursive: true });
    const file = path.join(tenantsDir, 'musterstadt.toml');
    const login = `\n[settings.oidc]\nissuer = "${idp.issuer}"\nclient_id = "amtsplatz"\njwks_url = "${idp.jwksUrl}"\n`;
    await writeFile(file, (await readFile(file, 'utf8')) + login);
  }
  const env = { ...process.env };
  // Only the embedded default on SQLite: no database or config of the caller's.
  for (const k of Object.keys(env)) {
    if (k.startsWith('AMTSPLATZ_') || k === 'DATABASE_URL') delete env[k];
  }
  Object.assign(env, {
    AMTSPLATZ_BIND: '127.0.0.1:0',
    AMTSPLATZ_DATA_DIR: dataDir,
    AMTSPLATZ_TENANTS_DIR: tenantsDir,
    // The suite's provider runs on loopback without TLS.
    AMTSPLATZ_AUTH__OIDC_ALLOW_HTTP: 'true',
    AMTSPLATZ_DEMO: 'true',
    AMTSPLATZ_LOG_FORMAT: 'text',
    AMTSPLATZ_CONFIG: path.join(dataDir, 'amtsplatz.toml'),
    NO_COLOR: '1',
  });
  const child = spawn(bin, ['serve'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    await rm(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + timeoutMs;
  let url;
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`server exited early (${child.exitCode ?? child.signalCode})`);
      }
      url ??= output.match(/Amtsplatz listening on (http:\/\/[^\s]+)/)?.[1];
      if (url) {
        const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
        if (ok) return { url, stop, log: () => output };
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`server not ready within ${timeoutMs} ms`);
  } catch (e) {
    await stop();
    e.message += `\n--- server output ---\n${output.slice(-4000)}`;
    throw e;
  }
}
