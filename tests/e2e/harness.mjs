// What the browser tests share: a real `siyu demo` on a free port with a
// temp data dir (extra arguments such as `--config FILE` appended), named
// steps that print their time and stop the run at the first failure,
// Debian's Chromium through playwright-core, the console login, and a
// clean shutdown. Each *.test.mjs file is one run of one demo.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.SIYU_BIN || path.join(here, '../../target/debug/siyu');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SHOTS = path.join(here, 'screenshots');
export const PASSWORD = 'siyu-demo';
fs.mkdirSync(SHOTS, { recursive: true });

export function startDemo(extraArgs = [], env = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'siyu-e2e-'));
  const child = spawn(BIN, ['demo', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn', ...env },
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`siyu demo did not start in 120 s\nstdout:\n${out}\nstderr:\n${err}`)), 120_000);
    child.stdout.on('data', (d) => {
      out += d;
      const url = /siyu demo on (http:\/\/\S+)/.exec(out);
      const key = /write key:\s+(\S+)/.exec(out);
      const logins = out.includes('login analyst');
      if (url && key && logins) { clearTimeout(timer); resolve({ url: url[1], key: key[1] }); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`siyu demo exited with ${code}\nstdout:\n${out}\nstderr:\n${err}`)); });
  });
  return { child, dataDir, ready, output: () => out, errors: () => err };
}

let failures = 0;
export const failed = () => failures;
// A failure outside any step (the demo did not start …).
export function failSetup(e) {
  if (!failures) console.log(`FAIL setup\n${e.stack || e}`);
  failures = failures || 1;
}
export async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name} (${Date.now() - t0} ms)\n${e.stack || e}`);
    throw e;
  }
}

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

// Page errors and CSP violations (expected 4xx answers aside) collected
// into `errors`; a screenshot helper writing to SHOTS.
export function watch(page, errors) {
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (40[0-4]|409|410|422)/.test(m.text())) errors.push(`console: ${m.text()}`); });
  return (name) => page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
}

export async function login(page, url, who) {
  await page.goto(url + '/');
  await page.locator('#login-form').waitFor();
  await page.fill('#login-name', who);
  await page.fill('#login-password', PASSWORD);
  await page.click('#login-submit');
  await page.locator('#app-view').waitFor();
}

// Closes the browser, stops the demo (SIGTERM, SIGKILL after 15 s),
// removes its data and exits with the run's verdict.
export async function finish(demo, browser, label) {
  if (browser) await browser.close().catch(() => {});
  demo.child.kill('SIGTERM');
  const exited = await new Promise((r) => {
    if (demo.child.exitCode !== null || demo.child.signalCode !== null) return r(true);
    const timer = setTimeout(() => r(false), 15_000);
    demo.child.on('exit', () => { clearTimeout(timer); r(true); });
  });
  if (!exited) {
    console.log('WARN siyu demo did not exit within 15 s of SIGTERM; killed it (SIGKILL)');
    demo.child.kill('SIGKILL');
  }
  fs.rmSync(demo.dataDir, { recursive: true, force: true });
  console.log(failures ? `${label}: FAILED (screenshots in ${SHOTS})` : `${label}: all passed (screenshots in ${SHOTS})`);
  process.exit(failures ? 1 : 0);
}
