// One Node HTTP client calling each URL: `node probe.mjs fetch|http URL...`.
// Prints `URL STATUS` or `URL error: MESSAGE` per URL. It sets nothing about proxies or
// certificates itself: what it does is what the environment makes Node do.
import http from "node:http";
import https from "node:https";

const TIMEOUT = 10000;

async function viaFetch(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT) });
  await r.arrayBuffer();
  return r.status;
}

function viaGet(url) {
  const client = url.startsWith("https:") ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(url, { timeout: TIMEOUT }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

const [mode, ...urls] = process.argv.slice(2);
const call = mode === "fetch" ? viaFetch : viaGet;
for (const url of urls) {
  try {
    console.log(`${url} ${await call(url)}`);
  } catch (e) {
    let cause = e;
    while (cause.cause) cause = cause.cause;
    console.log(`${url} error: ${String(cause.code || cause.name)}: ${cause.message}`.replace(/\n/g, " "));
  }
}
