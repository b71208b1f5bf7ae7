// The one test support of the JavaScript suites (node's test runner): the
// client module, and helpers shared by its tests.
import { fileURLToPath } from "node:url"

/** The client, as the npm package and the gem ship it. */
export const clientPath = fileURLToPath(new URL("../../app/javascript/redisse.js", import.meta.url))
export * from "../../app/javascript/redisse.js"
import { EventStreamParser } from "../../app/javascript/redisse.js"

/**
 * The events (and comments and retry values) a parser reads from `chunks`,
 * each chunk a string or bytes, pushed one by one as a network would.
 */
export function parseChunks(chunks) {
  const events = []
  const comments = []
  const retries = []
  const parser = new EventStreamParser({
    onEvent: (event) => events.push(event),
    onComment: (text) => comments.push(text),
    onRetry: (ms) => retries.push(ms)
  })
  for (const chunk of chunks) parser.push(typeof chunk === "string" ? chunk : Uint8Array.from(chunk))
  return { events, comments, retries }
}

/** Every way to cut `text` in two: the parser must read them all alike. */
export function splitsOf(text) {
  const bytes = new TextEncoder().encode(text)
  return Array.from({ length: bytes.length + 1 }, (_, at) => [bytes.slice(0, at), bytes.slice(at)])
}

/** A Math.random stand-in that returns `values` in turn. */
export function randomFrom(...values) {
  let index = 0
  return () => values[index++ % values.length]
}

/**
 * A stream URL as the gem signs it: `Redisse::Native.stream_token(["global",
 * "user:1"], 1893456000, "a secret", nil)` (1 January 2030).
 * spec/browser_client/token_spec.rb checks that the gem still signs this,
 * and that the client reads what the gem signs now.
 */
export const SIGNED_URL = "https://events.example.com/?token=AZOSxAZnbG9iYWzEBnVzZXI6Mc5w29iAwPTHwDMd-ls7cCaPJ8memNKLEvuZxkpEEHWH4JyOy7qo"
export const SIGNED_EXPIRES_AT = 1893456000
