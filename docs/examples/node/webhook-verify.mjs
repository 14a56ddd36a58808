// Receives the wallet's alert webhooks and checks each one's
// X-Wallet-Signature before trusting it:
//
//   X-Wallet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//
// WEBHOOK_SECRET is the whsec_… secret shown once by PUT /alerts/settings;
// HOST and PORT are where to listen (default: every interface, 8080). A valid alert is answered 204,
// anything else 400, so the wallet retries only real delivery failures.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error("set WEBHOOK_SECRET (whsec_…)");
  process.exit(1);
}
const port = Number(process.env.PORT || 8080);
const host = process.env.HOST || undefined;

// How far the signed time may be from now: it bounds how long a captured
// delivery could be replayed.
const toleranceSeconds = 5 * 60;

// verify returns null when header signs the raw body, or what is wrong.
function verify(header, body, now = Date.now()) {
  let t;
  const sigs = [];
  for (const part of (header || "").split(",")) {
    const [k, v] = part.trim().split("=", 2);
    if (k === "t") t = v;
    if (k === "v1" && /^[0-9a-f]{64}$/i.test(v || "")) sigs.push(Buffer.from(v, "hex"));
  }
  if (!/^\d+$/.test(t || "") || sigs.length === 0) return "no valid X-Wallet-Signature header";
  if (Math.abs(now / 1000 - Number(t)) > toleranceSeconds) return "signature timestamp too old or in the future";
  const want = createHmac("sha256", secret).update(`${t}.`).update(body).digest();
  return sigs.some((s) => timingSafeEqual(s, want)) ? null : "signature does not match";
}

createServer((req, res) => {
  if (req.method !== "POST") {
    res.writeHead(405).end();
    return;
  }
  // Verify the bytes as received: re-encoding parsed JSON would not
  // reproduce them.
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > 1 << 20) req.destroy();
    else chunks.push(c);
  });
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const problem = verify(req.headers["x-wallet-signature"], body);
    if (problem) {
      console.log("rejected:", problem);
      res.writeHead(400, { "content-type": "text/plain" }).end(problem);
      return;
    }
    let alert;
    try {
      alert = JSON.parse(body);
    } catch {
      res.writeHead(400).end("not an alert");
      return;
    }
    // X-Wallet-Alert-Id is the same on every attempt: deduplicate by it.
    console.log(`verified alert ${alert.id} (${alert.kind}): ${alert.message}`);
    res.writeHead(204).end();
  });
}).listen(port, host, () => console.error(`listening on ${host ?? ""}:${port}`));
