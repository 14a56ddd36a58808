// A Stripe customer created through the wallet with the official stripe
// package. The SDK owns the URL path (/v1/...), so it calls the wallet's
// root: the wallet access token must be scoped to the stripe service alone,
// which tells the wallet where the call goes.
import Stripe from "stripe";

const wallet = process.env.WALLET_URL?.replace(/\/+$/, "");
const token = process.env.WALLET_TOKEN;
if (!wallet || !token) {
  console.error("set WALLET_URL (http://localhost:6789) and WALLET_TOKEN (awk_…, scoped to stripe)");
  process.exit(1);
}

const url = new URL(wallet);
const stripe = new Stripe(token, {
  host: url.hostname,
  port: url.port || (url.protocol === "https:" ? 443 : 80),
  protocol: url.protocol.replace(":", ""),
});

const customer = await stripe.customers.create({ email: "jenny.rosen@example.com", name: "Jenny Rosen" });
console.log("customer", customer.id, customer.email);
