// One hop of a cascade in Node: `node hop.js PORT NAME NEXT_URL PROXY_HOST:PORT`.
// Any POST calls NEXT_URL (POST); it answers 200 if that answered below 400, else 502.
// Node 20's http ignores HTTP_PROXY, so this service sets its proxy in code: the
// request goes to the proxy with the absolute URL as its path, and the proxy user
// (this service's name) in a Proxy-Authorization header.
"use strict";
const http = require("http");

const [port, name, next, proxy] = process.argv.slice(2);
const [proxyHost, proxyPort] = proxy.split(":");
const auth = "Basic " + Buffer.from(`${name}:tap`).toString("base64");

function callNext(done) {
  const target = new URL(next);
  const body = JSON.stringify({ hop: next });
  const req = http.request({
    host: proxyHost, port: Number(proxyPort), method: "POST", path: next,
    headers: { Host: target.host, "Proxy-Authorization": auth,
               "Content-Type": "application/json",
               "Content-Length": Buffer.byteLength(body) },
  }, (res) => {
    res.resume();
    res.on("end", () => done(res.statusCode < 400));
  });
  req.on("error", () => done(false));
  req.end(body);
}

http.createServer((req, res) => {
  req.resume();
  req.on("end", () => callNext((ok) => {
    res.writeHead(ok ? 200 : 502, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ ok }));
  }));
}).listen(Number(port), "127.0.0.1");
