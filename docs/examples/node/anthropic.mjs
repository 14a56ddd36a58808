// A message to Claude through the wallet with the official @anthropic-ai/sdk
// package: the base URL is the wallet's /proxy/anthropic and the API key a
// wallet access token. The wallet sends the stored key upstream as x-api-key.
import Anthropic from "@anthropic-ai/sdk";

const wallet = process.env.WALLET_URL?.replace(/\/+$/, "");
const token = process.env.WALLET_TOKEN;
if (!wallet || !token) {
  console.error("set WALLET_URL (http://localhost:6789) and WALLET_TOKEN (awk_…)");
  process.exit(1);
}

const client = new Anthropic({ baseURL: `${wallet}/proxy/anthropic`, apiKey: token });

const msg = await client.messages.create({
  model: "claude-haiku-4-5",
  max_tokens: 256,
  messages: [{ role: "user", content: "Say hello" }],
});
for (const block of msg.content) {
  if (block.type === "text") console.log(block.text);
}
console.log(`${msg.usage.input_tokens} input and ${msg.usage.output_tokens} output tokens`);
