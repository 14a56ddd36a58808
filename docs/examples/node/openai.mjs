// OpenAI's Chat Completions through the wallet with the official openai
// package: the base URL is the wallet's /proxy/openai/v1 and the API key a
// wallet access token; the wallet puts the stored OpenAI key in its place.
// Streamed answers (Server-Sent Events) come through as the upstream sends
// them.
import OpenAI from "openai";

const wallet = process.env.WALLET_URL?.replace(/\/+$/, "");
const token = process.env.WALLET_TOKEN;
if (!wallet || !token) {
  console.error("set WALLET_URL (http://localhost:6789) and WALLET_TOKEN (awk_…)");
  process.exit(1);
}

const client = new OpenAI({ baseURL: `${wallet}/proxy/openai/v1`, apiKey: token });

const params = { model: "gpt-5.4-mini", messages: [{ role: "user", content: "Say hello" }] };

const { data: completion, response } = await client.chat.completions.create(params).withResponse();
console.log(completion.choices[0].message.content);
console.log(
  `key ${response.headers.get("x-wallet-key-id")}, ${response.headers.get("x-wallet-attempts")} attempt(s), ` +
    `strategy ${response.headers.get("x-wallet-strategy")}`,
);

const stream = await client.chat.completions.create({ ...params, stream: true });
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
}
process.stdout.write("\n");
