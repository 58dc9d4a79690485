// The catalog: a Node service that knows nothing of tapproxy. The demo fronts it on its
// port, so its callers are recorded with no setting in any client.
//
// `node catalog.js PORT [HOST]`. The drift: `mug` came in from a new import with its price as a string.
const http = require("http");

const products = {
  tea: { sku: "tea", name: "Green tea", price: 4.5 },
  cups: { sku: "cups", name: "Tea cups", price: 12 },
  mug: { sku: "mug", name: "Mug", price: "7.00" },
};

http
  .createServer((req, res) => {
    const match = req.url.match(/^\/products\/([^/?]+)$/);
    const product = match && products[match[1]];
    res.writeHead(product ? 200 : 404, { "content-type": "application/json" });
    res.end(JSON.stringify(product || { error: "no such product" }));
  })
  .listen(Number(process.argv[2]), process.argv[3] || "127.0.0.1");
