// Runs one SDK scenario (scenarios/) and prints its results as JSON lines on stdout:
//
//   node run.mjs <scenario> '<json args>'                  in Node, with the SDK's Node build
//   node run.mjs <scenario> '<json args>' --browser <url>  in headless Chromium, on page.html at
//                                                          <url> (served from another origin)
//
// A scenario's step(name, data) prints {"step": name, "data": data} and waits for one JSON line
// on stdin, the test's reply. The last line is {"result", "requests", "console"}: the scenario's
// values, every request the SDK made to args.base (method, path, headers, status), and the
// browser's console errors. Exit status 0 unless the runner itself failed; a failed SDK call
// is a value in "result", for the test to judge.
import diagnostics from 'node:diagnostics_channel';
import readline from 'node:readline';
import ConnectyCube from 'connectycube';
import { scenarios } from './scenarios/index.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// Quiet and self-contained: no GPU, no calls home, no updates or sync in the background.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const TIMEOUT_MS = 30_000;

function print(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

// stdin is read only once a scenario takes a step, so scenarios without one never wait on it.
let stdinLines;
async function step(name, data = null) {
  stdinLines ??= readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  print({ step: name, data });
  const { value, done } = await stdinLines.next();
  if (done) throw new Error(`stdin closed before the reply to step ${name}`);
  return JSON.parse(value);
}

// In Node the SDK sends with node-fetch over node:http (not the global fetch), so its requests
// are seen where node:http reports every one: its diagnostics channels. A scenario's own
// fetch (undici) is reported on undici's.
function recordNodeRequests() {
  const requests = [];
  const byRequest = new Map();
  const record = (request, method, path, headers) => {
    const entry = { method, path, headers, status: null };
    byRequest.set(request, entry);
    requests.push(entry);
  };
  const answered = ({ request, response }) => {
    if (byRequest.has(request)) byRequest.get(request).status = response.statusCode;
  };
  diagnostics.subscribe('http.client.request.start', ({ request }) => {
    const headers = {};
    for (const name of request.getRawHeaderNames()) headers[name] = String(request.getHeader(name));
    record(request, request.method, request.path, headers);
  });
  diagnostics.subscribe('http.client.response.finish', answered);
  diagnostics.subscribe('undici:request:create', ({ request }) => {
    const headers = {};
    for (let i = 0; i < request.headers.length; i += 2) headers[request.headers[i]] = request.headers[i + 1];
    record(request, request.method, request.path, headers);
  });
  diagnostics.subscribe('undici:request:headers', answered);
  return requests;
}

async function inNode(name, args) {
  const requests = recordNodeRequests();
  const result = await scenarios[name](ConnectyCube, args, step);
  return { result, requests, console: [] };
}

// Every request the page makes to the gateway. Playwright reports each fetch; CORS preflights
// it does not report, so those come from the DevTools protocol (Chromium gives them type
// Other; the SDK itself never sends OPTIONS). `settle()` lists each preflight before its fetch.
async function recordBrowserRequests(page, base) {
  const fetches = [];
  const preflights = new Map();
  page.on('request', (request) => {
    if (request.url().startsWith(base)) fetches.push(fetchEntry(request));
  });
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Network.requestWillBeSent', ({ requestId, request }) => {
    if (request.method !== 'OPTIONS' || !request.url.startsWith(base)) return;
    preflights.set(requestId, { ...entryOf(request.method, request.url, request.headers), status: null });
  });
  cdp.on('Network.responseReceived', ({ requestId, response }) => {
    if (preflights.has(requestId)) preflights.get(requestId).status = response.status;
  });
  cdp.on('Network.loadingFailed', ({ requestId, errorText }) => {
    if (preflights.has(requestId)) preflights.get(requestId).failure = errorText;
  });
  await cdp.send('Network.enable');
  return { settle: async () => withPreflights(await Promise.all(fetches), [...preflights.values()]) };
}

function withPreflights(fetches, preflights) {
  const requested = (p) => Object.entries(p.headers).find(([k]) => k.toLowerCase() === 'access-control-request-method')?.[1];
  const ordered = [];
  for (const request of fetches) {
    const i = preflights.findIndex((p) => p.path === request.path && requested(p) === request.method);
    if (i >= 0) ordered.push(...preflights.splice(i, 1));
    ordered.push(request);
  }
  return ordered.concat(preflights);
}

function entryOf(method, url, headers) {
  const { pathname, search } = new URL(url);
  return { method, path: pathname + search, headers };
}

async function fetchEntry(request) {
  const response = await request.response();
  return {
    ...entryOf(request.method(), request.url(), await request.allHeaders()),
    status: response ? response.status() : null,
    failure: request.failure()?.errorText ?? null,
  };
}

async function inBrowser(name, args, pageUrl) {
  const { chromium } = await import('playwright-core'); // only here: Node runs need none of it
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 15_000 });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(10_000);
    const errors = [];
    page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
    page.on('pageerror', (error) => errors.push(String(error)));
    const recorded = await recordBrowserRequests(page, args.base);
    await page.exposeFunction('sdkStep', step);
    await page.goto(pageUrl);
    await page.waitForFunction(() => typeof window.runScenario === 'function');
    const result = await page.evaluate(([n, a]) => window.runScenario(n, a), [name, args]);
    return { result, requests: await recorded.settle(), console: errors };
  } finally {
    await browser.close();
  }
}

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`scenario did not finish in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const [name, json, flag, pageUrl] = process.argv.slice(2);
  if (!scenarios[name]) throw new Error(`no scenario ${name}; known: ${Object.keys(scenarios)}`);
  const args = JSON.parse(json ?? '{}');
  const run = flag === '--browser' ? inBrowser(name, args, pageUrl) : inNode(name, args);
  print(await withTimeout(run, args.timeoutMs ?? TIMEOUT_MS));
}

// Exit explicitly: stdin, once read, would keep the process alive.
main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`${error.stack || error}\n`);
    process.exit(1);
  }
);
