// The official `openai` npm package against `router serve`: plain, streamed, errors, a cut
// stream. Prints one JSON object with what happened; the Python test asserts on it.
// Usage: node client.mjs BASE_URL KEY   (NODE_PATH-free: the package dir is argv[4])
import { createRequire } from "node:module";
import path from "node:path";

const [baseURL, apiKey, pkgDir] = process.argv.slice(2);
const require = createRequire(path.join(pkgDir, "node_modules", "x.js"));
const OpenAI = require("openai").default ?? require("openai");
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const messages = [{ role: "user", content: "hi" }];
const out = {};

const plain = await client.chat.completions.create({ model: "chat", messages, temperature: 0.1 });
out.plain = plain.choices[0].message.content;

const stream = await client.chat.completions.create({
  model: "chat", messages, stream: true, stream_options: { include_usage: true },
});
let text = "";
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
out.stream = text;
out.usage = usage ? usage.total_tokens : null;

async function errorOf(fn) {
  try { await fn(); return null; } catch (err) {
    return { name: err.constructor.name, status: err.status ?? null, code: err.code ?? null };
  }
}
out.unknown_model = await errorOf(() => client.chat.completions.create({ model: "nope", messages }));
out.bad_key = await errorOf(() =>
  new OpenAI({ baseURL, apiKey: "sk-wrong", maxRetries: 0 }).models.list());
out.cut = await errorOf(async () => {
  const s = await client.chat.completions.create({ model: "cut", messages, stream: true });
  for await (const _ of s) { /* read until it breaks */ }
});
console.log(JSON.stringify(out));
