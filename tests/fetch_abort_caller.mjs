// An API caller written as JavaScript and TypeScript callers are: Node's own `fetch` with an
// AbortController, on a connection its pool kept alive from an earlier request. No packages.
//
//   node fetch_abort_caller.mjs BASE_URL TOKEN streamed|buffered BODY_JSON
//
// Prints `sent` once the request is under way (`first-event` too once a streamed answer's first
// bytes arrived), aborts when a line `abort` arrives on stdin and prints `aborted <error name>`,
// then stays alive, its pool open, until stdin closes: a long-lived process that gave up on one
// request, not one whose exit closes every connection.
import { createInterface } from "node:readline";

const [baseUrl, token, mode, body] = process.argv.slice(2);
const headers = {
  authorization: `Bearer ${token}`,
  "anthropic-version": "2023-06-01",
  "content-type": "application/json",
};
const lines = createInterface({ input: process.stdin });
const commands = lines[Symbol.asyncIterator]();
const say = (line) => process.stdout.write(`${line}\n`);

// The pool's connection, kept alive by this first exchange, carries the request that is aborted.
const warm = await fetch(`${baseUrl}/health`, { headers });
await warm.text();

const controller = new AbortController();
const outcome = (async () => {
  const response = await fetch(`${baseUrl}/v1/messages`, {
    method: "POST",
    headers,
    body,
    signal: controller.signal,
  });
  if (mode === "streamed") {
    const reader = response.body.getReader();
    await reader.read();
    say("first-event");
    for (;;) {
      const { done } = await reader.read();
      if (done) return "ended";
    }
  }
  return `answered ${response.status} ${await response.text()}`;
})().then(
  (result) => result,
  (error) => `aborted ${error.name}`,
);
say("sent");

for (;;) {
  const { value, done } = await commands.next();
  if (done) process.exit(0);
  if (value.trim() === "abort") break;
}
controller.abort();
say(await outcome);
// Alive until told otherwise, as a server process that made the call would be.
await commands.next();
process.exit(0);
