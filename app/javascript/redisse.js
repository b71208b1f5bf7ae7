// The browser client of a redisse server.
//
//   import { connect } from "redisse"
//   const stream = connect({ url: signedUrl, endpoint: "/events/url" })
//   stream.addEventListener("message", (event) => show(event.data))
//
// - One connection per browser: the tabs of an origin that ask for the same
//   stream elect a leader with the Web Locks API; the leader holds the
//   connection and relays every event to the other tabs over a
//   BroadcastChannel. When the leader goes (closed, crashed, frozen),
//   another tab takes over from the last event id it saw. Without Web Locks
//   or BroadcastChannel, each tab holds its own connection.
// - Tokens renewed before they expire: a signed URL's token says when it
//   expires (its payload is readable; only its signature is secret). Shortly
//   before, the client asks for a new URL, opens the new stream from the last
//   event id, and only then closes the old one.
// - Gaps surfaced: the server's `missedevents` becomes a `gap` event; on a
//   page with Turbo, unless the page prevents it, the page's content is
//   refreshed.
// - Retries: after a network error or a 5xx, jittered exponential backoff,
//   never sooner than the answer's Retry-After. After a 403, one new URL,
//   then the failure is reported.
//
// The connection is a fetch() of the event stream rather than an
// EventSource: an EventSource hides why it failed (a 403 from a 503 from a
// lost network) and the Retry-After header, and gives up for good after
// any refusal.
//
// It also defines <redisse-stream-source>, Turbo Streams over this shared
// stream (see the end of this file). No dependencies; the same file is the
// npm package and the gem's asset.

// ---------------------------------------------------------------------------
// The pure parts: no network, no DOM, no timers (unit-tested with node).

/** What the client reports as its state. */
export const STATES = Object.freeze(["connecting", "open", "renewing", "gap", "closed"])

// Which inputs move the state where. `gap` lasts while the page handles it:
// the client goes back to `open` right after. `closed` is final.
const TRANSITIONS = {
  connecting: { opened: "open", lost: "connecting", failed: "closed", closed: "closed" },
  open: { renewing: "renewing", gap: "gap", lost: "connecting", failed: "closed", closed: "closed" },
  renewing: { opened: "open", gap: "gap", lost: "renewing", failed: "closed", closed: "closed" },
  gap: { opened: "open", renewing: "renewing", lost: "connecting", failed: "closed", closed: "closed" },
  closed: {}
}

/** The stream's state, moved by what happens to its connection. */
export class StreamState {
  constructor(state = "connecting") {
    this.state = state
  }

  /**
   * Moves on `input` (opened, renewing, gap, lost, failed, closed).
   * @returns {string|null} the new state, or null when `input` does not
   *   apply to the current state (the state is then unchanged)
   */
  apply(input) {
    const next = TRANSITIONS[this.state][input]
    if (next === undefined) return null
    this.state = next
    return next
  }

  /** A state the leader reported, for a follower that mirrors it. */
  mirror(state) {
    if (this.state === "closed" || !STATES.includes(state)) return false
    this.state = state
    return true
  }
}

/**
 * The ids of the events delivered lately, to deliver each once. Ids are not
 * always increasing on a stream (two publishers may deliver 8 before 7), so
 * this is a set, bounded: the oldest ids are forgotten first.
 */
export class SeenIds {
  constructor(capacity = 1024) {
    this.capacity = capacity
    this.ids = new Set()
  }

  /** @returns {boolean} whether `id` is new (and now remembered) */
  add(id) {
    if (this.ids.has(id)) return false
    this.ids.add(id)
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value)
    return true
  }
}

/**
 * How long to wait before the next attempt, in milliseconds: exponential in
 * `attempt` (0 for the first retry) up to `max`, with "equal jitter" (between
 * half and all of it) so that browsers do not all come back at once; never
 * less than `retryAfter` (ms, from a Retry-After header), with up to a
 * quarter more for the same reason.
 */
export function retryDelay(attempt, { retryAfter = null, initial = 1000, max = 30000, random = Math.random } = {}) {
  const exponential = Math.min(max, initial * 2 ** Math.min(attempt, 30))
  const spread = random()
  const jittered = exponential / 2 + (spread * exponential) / 2
  if (retryAfter === null) return jittered
  return Math.max(jittered, retryAfter + (spread * retryAfter) / 4)
}

/**
 * A Retry-After header in milliseconds: seconds, or an HTTP date.
 * @returns {number|null} null when absent or unreadable
 */
export function parseRetryAfter(value, now = Date.now()) {
  if (value === null || value === undefined) return null
  const text = String(value).trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  const date = Date.parse(text)
  return Number.isNaN(date) ? null : Math.max(0, date - now)
}

/**
 * Reads an event stream as it arrives (the WHATWG rules: lines end with
 * CR LF, LF or CR; an empty line dispatches; `:` starts a comment).
 * `onEvent({ type, data, id })`: `id` is the event's own `id:` field, or
 * null. `onComment(text)`, `onRetry(ms)`.
 */
export class EventStreamParser {
  constructor({ onEvent, onComment = () => {}, onRetry = () => {} }) {
    this.onEvent = onEvent
    this.onComment = onComment
    this.onRetry = onRetry
    this.decoder = new TextDecoder()
    this.buffer = ""
    this.started = false
    this.skipLineFeed = false // the last chunk ended with CR
    this.reset()
  }

  reset() {
    this.type = ""
    this.data = []
    this.id = null
  }

  /** @param {Uint8Array|string} chunk */
  push(chunk) {
    let text = typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true })
    if (!this.started && text.length > 0) {
      this.started = true
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
    }
    if (this.skipLineFeed && text.startsWith("\n")) text = text.slice(1)
    this.skipLineFeed = false
    this.buffer += text
    let start = 0
    for (;;) {
      const end = this.buffer.slice(start).search(/[\r\n]/)
      if (end < 0) break
      const lineEnd = start + end
      this.line(this.buffer.slice(start, lineEnd))
      if (this.buffer[lineEnd] === "\r") {
        if (lineEnd + 1 === this.buffer.length) {
          this.skipLineFeed = true
          start = lineEnd + 1
          break
        }
        start = this.buffer[lineEnd + 1] === "\n" ? lineEnd + 2 : lineEnd + 1
      } else {
        start = lineEnd + 1
      }
    }
    this.buffer = this.buffer.slice(start)
  }

  line(line) {
    if (line === "") return this.dispatch()
    if (line.startsWith(":")) return this.onComment(line.slice(1).trim())
    const colon = line.indexOf(":")
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? "" : line.slice(colon + 1)
    if (value.startsWith(" ")) value = value.slice(1)
    if (field === "event") this.type = value
    else if (field === "data") this.data.push(value)
    else if (field === "id" && !value.includes("\0")) this.id = value
    else if (field === "retry" && /^\d+$/.test(value)) this.onRetry(Number(value))
  }

  dispatch() {
    const event = { type: this.type || "message", data: this.data.join("\n"), id: this.id }
    const hasData = this.data.length > 0
    this.reset()
    if (hasData) this.onEvent(event)
  }
}

/**
 * `url` asking for the events after `id`: its `lastEventId` query item
 * replaced. The query is edited as text: redirect-mode channel items have
 * no `=`, and URLSearchParams would write them back as `name=`, another
 * channel for the server. (A query item, not the Last-Event-Id header,
 * which would cost a CORS preflight.)
 */
export function withLastEventId(url, id) {
  if (id === null || id === undefined || id === "") return url
  return replaceLastEventId(url, `lastEventId=${encodeURIComponent(id)}`)
}

function replaceLastEventId(url, item) {
  const hashAt = url.indexOf("#")
  const base = hashAt < 0 ? url : url.slice(0, hashAt)
  const queryAt = base.indexOf("?")
  const path = queryAt < 0 ? base : base.slice(0, queryAt)
  const items = queryAt < 0 ? [] : base.slice(queryAt + 1).split("&")
  const kept = items.filter((item) => item !== "" && item !== "lastEventId" && !item.startsWith("lastEventId="))
  if (item) kept.unshift(item)
  return kept.length > 0 ? `${path}?${kept.join("&")}` : path
}

/**
 * What a stream URL's token grants: its channels and when it expires (Unix
 * seconds), read from the token's payload (see the README's "The token":
 * version 1, then MessagePack `[channels, expires_at, key_id]`, then the
 * signature, which is not checked here: the server does that).
 * @returns {{channels: string[], expiresAt: number}|null} null when the URL
 *   has no token, or one of another version
 */
export function readToken(url) {
  const match = /[?&]token=([A-Za-z0-9_-]+)/.exec(url)
  if (!match) return null
  try {
    const bytes = base64UrlBytes(match[1])
    if (bytes[0] !== 1) return null
    const [payload] = readMessagePack(bytes, 1)
    if (!Array.isArray(payload) || !Array.isArray(payload[0]) || typeof payload[1] !== "number") return null
    const text = new TextDecoder()
    const channels = payload[0].map((channel) => (typeof channel === "string" ? channel : text.decode(channel)))
    return { channels, expiresAt: payload[1] }
  } catch {
    return null
  }
}

/**
 * What makes two tabs' streams the same stream: the server's address and
 * the channels. For a signed URL, the token's channels (each tab's token is
 * another, with its own expiry); otherwise the URL without its
 * `lastEventId`.
 */
export function streamKey(url, base = defaultBase()) {
  const absolute = new URL(url, base)
  const token = readToken(absolute.href)
  const server = `${absolute.origin}${absolute.pathname}`
  if (token) return `${server} ${JSON.stringify([...token.channels].sort())}`
  return replaceLastEventId(`${server}${absolute.search}`, null)
}

function base64UrlBytes(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4)
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0))
}

// The few MessagePack types a token holds: arrays, strings, binaries,
// integers, nil. @returns [value, offset after it]
function readMessagePack(bytes, offset) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const byte = bytes[offset]
  if (byte === undefined) throw new Error("truncated")
  const sized = (size, start, read) => read(start, size)
  const array = (count, start) => {
    const items = []
    let at = start
    for (let i = 0; i < count; i++) {
      const [item, next] = readMessagePack(bytes, at)
      items.push(item)
      at = next
    }
    return [items, at]
  }
  const bin = (start, size) => [bytes.subarray(start, start + size), start + size]
  const str = (start, size) => [new TextDecoder().decode(bytes.subarray(start, start + size)), start + size]
  if (byte <= 0x7f) return [byte, offset + 1]
  if (byte >= 0xe0) return [byte - 0x100, offset + 1]
  if (byte >= 0x90 && byte <= 0x9f) return array(byte & 0x0f, offset + 1)
  if (byte >= 0xa0 && byte <= 0xbf) return str(offset + 1, byte & 0x1f)
  switch (byte) {
    case 0xc0: return [null, offset + 1]
    case 0xc4: return sized(view.getUint8(offset + 1), offset + 2, bin)
    case 0xc5: return sized(view.getUint16(offset + 1), offset + 3, bin)
    case 0xc6: return sized(view.getUint32(offset + 1), offset + 5, bin)
    case 0xcc: return [view.getUint8(offset + 1), offset + 2]
    case 0xcd: return [view.getUint16(offset + 1), offset + 3]
    case 0xce: return [view.getUint32(offset + 1), offset + 5]
    case 0xcf: return [view.getUint32(offset + 1) * 2 ** 32 + view.getUint32(offset + 5), offset + 9]
    case 0xd0: return [view.getInt8(offset + 1), offset + 2]
    case 0xd1: return [view.getInt16(offset + 1), offset + 3]
    case 0xd2: return [view.getInt32(offset + 1), offset + 5]
    case 0xd3: return [view.getInt32(offset + 1) * 2 ** 32 + view.getUint32(offset + 5), offset + 9]
    case 0xd9: return sized(view.getUint8(offset + 1), offset + 2, str)
    case 0xda: return sized(view.getUint16(offset + 1), offset + 3, str)
    case 0xdb: return sized(view.getUint32(offset + 1), offset + 5, str)
    case 0xdc: return array(view.getUint16(offset + 1), offset + 3)
    case 0xdd: return array(view.getUint32(offset + 1), offset + 5)
    default: throw new Error(`unexpected MessagePack type 0x${byte.toString(16)}`)
  }
}

function defaultBase() {
  return globalThis.document?.baseURI ?? globalThis.location?.href ?? "http://localhost/"
}

// ---------------------------------------------------------------------------
// One HTTP request of an event stream.

// How one request ended, for the connection to decide what next:
// { kind: "network" } | { kind: "ended" } (the server closed the stream)
// | { kind: "refused", status, reason, retryAfter }.
class Request {
  constructor(url, { credentials, onOpen, onEvent, onRetry, onEnd }) {
    this.url = url
    this.handlers = { onOpen, onEvent, onRetry, onEnd }
    this.credentials = credentials
    this.abort = new AbortController()
    this.closed = false
  }

  async run() {
    let response
    try {
      response = await fetch(this.url, {
        headers: { Accept: "text/event-stream" },
        cache: "no-store",
        credentials: this.credentials,
        signal: this.abort.signal
      })
    } catch {
      return this.end({ kind: "network" })
    }
    if (!response.ok || !(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
      // The server says why on the line after the status (403's "expired token").
      const body = await response.text().catch(() => "")
      const reason = body.split("\n")[1] || body.split("\n")[0] || response.statusText
      const retryAfter = parseRetryAfter(response.headers.get("Retry-After"))
      return this.end({ kind: "refused", status: response.status, reason, retryAfter })
    }
    if (this.closed) return
    this.handlers.onOpen(this)
    const parser = new EventStreamParser({
      onEvent: (event) => this.closed || this.handlers.onEvent(this, event),
      onRetry: (ms) => this.handlers.onRetry(ms)
    })
    const reader = response.body.getReader()
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done || this.closed) break
        parser.push(value)
      }
    } catch {
      return this.end({ kind: "network" })
    }
    this.end({ kind: "ended" })
  }

  end(how) {
    if (this.closed) return
    this.closed = true
    this.handlers.onEnd(this, how)
  }

  close() {
    this.closed = true
    this.abort.abort()
  }
}

// ---------------------------------------------------------------------------
// The connection a leader (or a tab alone) holds: opened, renewed before its
// token expires, retried. It tells `out` what happens:
//   out.event({ type, data, id })   an event for the page, new (deduplicated);
//                                   its id, if any, is where to resume from
//   out.position(id)                where to resume from, with no event (the
//                                   stream's lastEventId)
//   out.state(input, detail)        an input of StreamState
//   out.gap()                       the history did not reach back
//   out.url(url)                    the newest URL, for another tab to take over with
//   out.failed({ status, reason })  given up: the stream is closed
//   out.retry({ delay, status, reason })  the next attempt comes in `delay` ms

// A token is renewed this share of its lifetime before it expires, within
// these bounds (a background tab's timers may fire a minute late: the
// server's tokenExpired then triggers the same renewal).
const RENEWAL_SHARE = 0.2
const RENEWAL_MARGIN_MIN = 1000
const RENEWAL_MARGIN_MAX = 60000

class Connection {
  constructor({ source, url, lastEventId, seen, options, out }) {
    this.source = source // { url, fetchUrl } (fetchUrl may be null)
    this.url = url
    this.lastEventId = lastEventId
    this.seen = seen
    this.options = options
    this.out = out
    this.current = null // the request whose events the page gets
    this.next = null // a renewal's request, until it opens
    this.attempt = 0
    this.retryBase = options.retry.initial // or the stream's `retry:`
    this.refusedOnce = false // a 403 already asked for a new URL
    this.renewing = false // a renewal is under way
    this.timer = null
    this.stopped = false
  }

  start() {
    if (this.url && !this.expiresSoon(this.url)) this.open(this.url)
    else this.reconnect({ freshUrl: true })
  }

  stop() {
    this.stopped = true
    clearTimeout(this.timer)
    this.current?.close()
    this.next?.close()
  }

  // --- opening and reopening ---

  open(url, { renewal = false } = {}) {
    if (this.stopped) return
    this.url = url
    const request = new Request(withLastEventId(url, this.lastEventId), {
      credentials: this.options.withCredentials ? "include" : "same-origin",
      onOpen: (opened) => this.opened(opened),
      onEvent: (from, event) => this.received(from, event),
      onRetry: (ms) => { this.retryBase = ms },
      onEnd: (ended, how) => this.ended(ended, how)
    })
    // One request of each kind at most: a renewal and a reconnection that
    // raced each other leave no request behind.
    if (renewal) {
      this.next?.close()
      this.next = request
    } else {
      this.current?.close()
      this.current = request
    }
    request.run()
  }

  opened(request) {
    if (request === this.next) {
      // The new stream is open: only now does the old one go.
      this.current?.close()
      this.current = request
      this.next = null
    }
    this.renewing = false
    this.attempt = 0
    this.refusedOnce = false
    this.out.state("opened")
    this.scheduleRenewal()
  }

  // After a loss or a refusal: a URL (a fresh one when asked, or when the
  // current one's token is about to expire), then a new request, after
  // `delay` ms.
  reconnect({ freshUrl = false, delay = 0 } = {}) {
    clearTimeout(this.timer)
    this.timer = setTimeout(async () => {
      const url = await this.newUrl(freshUrl || this.expiresSoon(this.url))
      // A renewal under way meanwhile may have opened a stream already.
      if (url && !this.current) this.open(url)
    }, delay)
  }

  // The URL to open: the current one, or a new one from the source.
  // @returns {Promise<string|null>} null when given up or stopped
  async newUrl(fresh) {
    if (!fresh || !this.source.fetchUrl) {
      if (this.url) return this.url
      if (!this.source.fetchUrl) return null
    }
    for (;;) {
      if (this.stopped) return null
      try {
        const url = await this.source.fetchUrl(this.lastEventId)
        if (this.stopped) return null
        this.out.url(url)
        return url
      } catch (error) {
        // The application refused (logged out, say): nothing to retry.
        if (error.status >= 400 && error.status < 500) {
          this.fail({ status: error.status, reason: error.message })
          return null
        }
        const delay = this.delay()
        this.out.retry({ delay, status: error.status ?? null, reason: error.message })
        await new Promise((resolve) => { this.timer = setTimeout(resolve, delay) })
      }
    }
  }

  delay(retryAfter = null) {
    return retryDelay(this.attempt++, { retryAfter, initial: this.retryBase, max: this.options.retry.max })
  }

  // --- renewal ---

  // When the URL's token expires, in ms since the epoch; null without a token.
  expiry(url) {
    const token = url && readToken(url)
    return token ? token.expiresAt * 1000 : null
  }

  expiresSoon(url) {
    const expiresAt = this.expiry(url)
    return expiresAt !== null && expiresAt - Date.now() < RENEWAL_MARGIN_MIN
  }

  scheduleRenewal() {
    clearTimeout(this.timer)
    const expiresAt = this.expiry(this.url)
    if (expiresAt === null || !this.source.fetchUrl) return
    const left = expiresAt - Date.now()
    // A token that looks expired, or nearly, on arrival means clocks that
    // disagree: it is left to the server's tokenExpired, rather than
    // renewed again and again.
    if (left < 2 * RENEWAL_MARGIN_MIN) return
    const margin = Math.min(RENEWAL_MARGIN_MAX, Math.max(RENEWAL_MARGIN_MIN, left * RENEWAL_SHARE))
    this.timer = setTimeout(() => this.renew("expiring"), left - margin)
  }

  // A new URL, and its stream opened from the last event id beside the
  // current one; `opened` then closes the current one.
  async renew(reason) {
    if (this.stopped || this.renewing) return
    this.renewing = true
    this.out.state("renewing", { reason })
    const url = await this.newUrl(true)
    if (url) this.open(url, { renewal: this.current !== null })
  }

  // --- what the streams say ---

  received(request, event) {
    switch (event.type) {
      case "tokenExpired":
        // The stream ends now. A renewal already under way takes over;
        // otherwise one starts at once: with a new URL, or the same one
        // when it has no token (through nginx, which signs each request).
        if (request === this.current && (this.source.fetchUrl || !readToken(this.url))) this.renew("expired")
        return
      case "missedevents":
        // On a renewal's stream while the current one still delivers,
        // nothing was missed: the two overlap.
        if (request === this.next && this.current) return
        this.out.gap()
        return
      case "lastEventId":
        // Where the stream starts, when it has nothing to replay: a
        // position for a stream that received nothing yet.
        if (event.id && !this.lastEventId) this.setPosition(event.id)
        return
    }
    if (event.id) {
      if (!this.seen.add(event.id)) return
      this.lastEventId = event.id
    }
    this.out.event(event)
  }

  setPosition(id) {
    this.lastEventId = id
    this.out.position(id)
  }

  ended(request, how) {
    if (this.stopped) return
    if (request === this.next) {
      this.next = null
      return this.endedRenewal(how)
    }
    if (request !== this.current) return
    this.current = null
    if (this.next) return // the renewal's stream takes over when it opens
    if (how.kind === "refused") return this.refused(how)
    // Lost, or ended by the server (restarting, or a token expired: its
    // renewal is under way, or the URL is opened again).
    this.out.state("lost")
    const fresh = this.expiresSoon(this.url)
    this.retryIn(fresh ? 0 : this.delay(), { status: null, reason: how.kind }, { freshUrl: fresh })
  }

  retryIn(delay, why, { freshUrl = false } = {}) {
    this.out.retry({ delay, ...why })
    this.reconnect({ freshUrl, delay })
  }

  endedRenewal(how) {
    this.renewing = false
    if (this.current) {
      // The old stream still runs: try again before it expires.
      clearTimeout(this.timer)
      this.timer = setTimeout(() => this.renew("expiring"), this.delay(how.retryAfter ?? null))
    } else if (how.kind === "refused") {
      this.refused(how)
    } else {
      this.out.state("lost")
      this.retryIn(this.delay(), { status: null, reason: how.kind }, { freshUrl: true })
    }
  }

  refused({ status, reason, retryAfter }) {
    if (status === 403 && this.source.fetchUrl && !this.refusedOnce) {
      this.refusedOnce = true
      this.out.state("lost")
      return this.retryIn(0, { status, reason }, { freshUrl: true })
    }
    if (status >= 500) {
      this.out.state("lost")
      return this.retryIn(this.delay(retryAfter), { status, reason })
    }
    this.fail({ status, reason })
  }

  fail(failure) {
    this.stop()
    this.out.failed(failure)
  }
}

// ---------------------------------------------------------------------------
// The stream a page gets: shared with the page's other tabs when it can be.

/**
 * Opens a stream.
 *
 * @param source where the stream is:
 *   - a URL (`"/events"` through nginx, or a signed URL on the server);
 *   - a function `(lastEventId) => url` (or a promise of one), called
 *     whenever a new URL is needed: at the start, before a token expires,
 *     after a 403;
 *   - `{ endpoint }`: a URL of the application that answers a fresh stream
 *     URL as text, given `?lastEventId=`;
 *   - `{ url, endpoint }` (or `{ url, fetchUrl }`): start with `url`, ask
 *     the endpoint (or the function) for the next ones.
 * @param options
 *   - `key`: what makes two tabs' streams the same one (default: the
 *     server and the channels, from the first URL);
 *   - `share`: false to hold a connection of this tab's own;
 *   - `withCredentials`: send cookies to another origin's server;
 *   - `refreshOnGap`: false to never refresh a Turbo page on a gap;
 *   - `retry`: `{ initial, max }` backoff bounds, in ms (1000, 30000).
 * @returns {RedisseStream}
 */
export function connect(source, options = {}) {
  return new RedisseStream(source, options)
}

/**
 * A stream shared by the tabs of a browser. Its events are dispatched by
 * their type as MessageEvents (`data`, and `lastEventId`: the event's id),
 * like an EventSource's. Besides those, four events of its own:
 * `statechange` (`detail.state`, and `detail.failure` once closed by a
 * refusal), `gap` (cancelable: the default refreshes a Turbo page),
 * `retry` (`detail.delay` in ms, and the `status` and `reason` of the
 * refusal, if it was one) and `role` (`detail.role`: "leader", "follower"
 * or "alone").
 */
export class RedisseStream extends EventTarget {
  #source
  #options
  #machine = new StreamState()
  #seen = new SeenIds()
  #connection = null
  #channel = null
  #lockRequest = null
  #stepDown = null
  #freshUrl = null
  #lifecycle = []

  constructor(source, options = {}) {
    super()
    this.#source = normalizeSource(source)
    this.#options = {
      share: true,
      withCredentials: false,
      refreshOnGap: true,
      ...options,
      retry: { initial: 1000, max: 30000, ...options.retry }
    }
    /** @type {string} the id of the last event, to resume from */
    this.lastEventId = ""
    /** @type {string|null} "leader", "follower" or "alone" */
    this.role = null
    /** @type {{status: number, reason: string}|null} why it closed, if it gave up */
    this.failure = null
    /** @type {string|null} */
    this.key = null
    this.#start()
  }

  /** @returns {string} connecting, open, renewing, gap or closed */
  get state() {
    return this.#machine.state
  }

  /** Closes the stream; another tab that shares it takes over. */
  close() {
    this.#leave()
    this.#lifecycle.forEach(([target, type, listener]) => target.removeEventListener(type, listener))
    this.#lifecycle = []
    this.#setState("closed")
  }

  async #start() {
    try {
      this.key = await (this.#options.key ?? this.#firstKey())
    } catch (error) {
      return this.#failed({ status: error.status ?? 0, reason: error.message })
    }
    if (this.state === "closed") return
    if (this.#options.share && sharingIsPossible()) {
      this.#join()
    } else {
      this.#setRole("alone")
      this.#lead()
    }
    this.#watchLifecycle()
  }

  // The key comes from the first URL: one from the source when none is given.
  async #firstKey() {
    if (!this.#source.url) this.#freshUrl = this.#source.url = await this.#source.fetchUrl("")
    return streamKey(this.#source.url)
  }

  // --- sharing ---

  #join() {
    this.#channel = new BroadcastChannel(`redisse ${this.key}`)
    this.#channel.onmessage = ({ data }) => this.#heard(data)
    this.#setRole("follower")
    this.#post({ kind: "hello" })
    this.#requestLead()
  }

  // Waits for the lock; holds it, and the connection, until #stepDown.
  #requestLead() {
    const abort = new AbortController()
    this.#lockRequest = abort
    navigator.locks
      .request(`redisse ${this.key}`, { signal: abort.signal }, () => {
        if (abort.signal.aborted) return null
        this.#setRole("leader")
        return new Promise((resolve) => {
          this.#stepDown = resolve
          this.#lead()
        })
      })
      .catch(() => {}) // aborted: closed, or frozen
  }

  // Gives up the lead, or the wait for it.
  #abdicate() {
    this.#lockRequest?.abort()
    this.#lockRequest = null
    this.#connection?.stop()
    this.#connection = null
    this.#stepDown?.()
    this.#stepDown = null
  }

  #leave() {
    this.#abdicate()
    this.#channel?.close()
    this.#channel = null
  }

  // A frozen tab (a background tab the browser suspends, or a page kept
  // for the back button) would keep its connection, and a leader its lock,
  // so that the other tabs would wait: it gives them up, and asks again
  // when it comes back. A follower's channel stays open: what the new
  // leader relays meanwhile waits for it there.
  #watchLifecycle() {
    if (typeof document === "undefined") return
    const away = (event) => {
      if (event.type === "pagehide" && !event.persisted) return
      if (this.state === "closed") return
      if (this.role === "alone") {
        this.#connection?.stop()
        this.#connection = null
      } else if (this.#lockRequest) {
        this.#abdicate()
        this.#setRole("follower")
      }
    }
    const back = (event) => {
      if (event.type === "pageshow" && !event.persisted) return
      if (this.state === "closed") return
      if (this.role === "alone") {
        if (!this.#connection) this.#lead()
      } else if (!this.#lockRequest && this.#channel) {
        this.#requestLead()
      }
    }
    for (const [type, listener] of [["freeze", away], ["pagehide", away], ["resume", back], ["pageshow", back]]) {
      const target = type === "freeze" || type === "resume" ? document : window
      target.addEventListener(type, listener)
      this.#lifecycle.push([target, type, listener])
    }
  }

  #post(message) {
    this.#channel?.postMessage(message)
  }

  // What another tab said.
  #heard(message) {
    switch (message.kind) {
      case "hello":
        if (this.role === "leader") this.#post({ kind: "state", state: this.state, lastEventId: this.lastEventId, url: this.#freshUrl })
        return
      case "event":
        if (this.role !== "leader") this.#deliver(message.event)
        return
      case "state":
        if (this.role === "leader") return
        if (message.lastEventId) this.lastEventId = message.lastEventId
        if (message.url) this.#freshUrl = message.url
        if (message.state && this.#machine.mirror(message.state)) this.#announceState(message.detail)
        return
      case "position":
        if (this.role !== "leader") this.lastEventId = message.id
        return
      case "url":
        this.#freshUrl = message.url
        return
      case "gap":
        if (this.role !== "leader") this.#gap()
        return
      case "failed":
        if (this.role !== "leader") this.#failed(message.failure)
        return
      case "retry":
        if (this.role !== "leader") this.dispatchEvent(new CustomEvent("retry", { detail: message.detail }))
        return
    }
  }

  // --- leading: holding the connection ---

  #lead() {
    const relay = (message) => this.#post(message)
    // Taking over: no stream until this tab's opens.
    if (this.state !== "connecting") {
      this.#setState("connecting")
      relay({ kind: "state", state: this.state, lastEventId: this.lastEventId })
    }
    this.#connection = new Connection({
      source: this.#source,
      url: this.#freshUrl ?? this.#source.url,
      lastEventId: this.lastEventId,
      seen: this.#seen,
      options: this.#options,
      out: {
        // The event and its position go to the other tabs in one message:
        // a closed tab's process may be killed between two, and a position
        // relayed without its event would have the next leader resume past
        // an event no tab got.
        event: (event) => {
          if (event.id) this.lastEventId = event.id
          this.#dispatchEvent(event)
          relay({ kind: "event", event })
        },
        position: (id) => {
          this.lastEventId = id
          relay({ kind: "position", id })
        },
        state: (input, detail) => {
          const before = this.state
          if (this.#machine.apply(input) === null || this.state === before) return
          this.#announceState(detail)
          relay({ kind: "state", state: this.state, detail, lastEventId: this.lastEventId })
        },
        gap: () => {
          this.#gap()
          relay({ kind: "gap" })
        },
        url: (url) => {
          this.#freshUrl = url
          relay({ kind: "url", url })
        },
        failed: (failure) => {
          relay({ kind: "failed", failure })
          this.#failed(failure)
        },
        retry: (detail) => {
          this.dispatchEvent(new CustomEvent("retry", { detail }))
          relay({ kind: "retry", detail })
        }
      }
    })
    this.#connection.start()
  }

  // --- what the page sees ---

  #deliver(event) {
    if (event.id) {
      if (!this.#seen.add(event.id)) return
      this.lastEventId = event.id
    }
    this.#dispatchEvent(event)
  }

  #dispatchEvent({ type, data, id }) {
    this.dispatchEvent(new MessageEvent(type, { data, lastEventId: id ?? "" }))
  }

  #gap() {
    if (this.#machine.apply("gap") !== null) this.#announceState()
    const gap = new Event("gap", { cancelable: true })
    this.dispatchEvent(gap)
    if (!gap.defaultPrevented && this.#options.refreshOnGap) refreshTurboPage()
    if (this.#machine.apply("opened") !== null) this.#announceState()
  }

  #failed(failure) {
    this.failure = failure
    this.#leave()
    this.#setState("closed")
  }

  #setState(state) {
    if (this.state === state) return
    this.#machine.state = state
    this.#announceState()
  }

  #announceState(detail = {}) {
    this.dispatchEvent(new CustomEvent("statechange", { detail: { ...detail, state: this.state, failure: this.failure } }))
  }

  #setRole(role) {
    if (this.role === role) return
    this.role = role
    this.dispatchEvent(new CustomEvent("role", { detail: { role } }))
  }
}

// { url, fetchUrl(lastEventId) } from what connect() was given.
function normalizeSource(source) {
  if (typeof source === "string") {
    // A URL without a token (through nginx) is opened again as it is.
    return { url: source, fetchUrl: null }
  }
  if (typeof source === "function") return { url: null, fetchUrl: async (id) => String(await source(id)) }
  if (source && typeof source === "object") {
    const fetchUrl = source.fetchUrl
      ? async (id) => String(await source.fetchUrl(id))
      : source.endpoint
        ? (id) => fetchFromEndpoint(source.endpoint, id)
        : null
    if (!source.url && !fetchUrl) throw new TypeError("connect() needs a url, a function or an endpoint")
    return { url: source.url ?? null, fetchUrl }
  }
  throw new TypeError("connect() needs a url, a function or an endpoint")
}

async function fetchFromEndpoint(endpoint, lastEventId) {
  const response = await fetch(withLastEventId(endpoint, lastEventId), {
    headers: { Accept: "text/plain" },
    cache: "no-store",
    credentials: "same-origin"
  })
  const body = (await response.text()).trim()
  if (!response.ok || body === "") {
    const error = new Error(`${endpoint} answered ${response.status}`)
    error.status = response.ok ? 502 : response.status
    throw error
  }
  return body
}

function sharingIsPossible() {
  return typeof BroadcastChannel === "function" && typeof navigator !== "undefined" && Boolean(navigator.locks?.request)
}

// With Turbo on the page, its content again from the application: a
// morphing refresh on Turbo 8, a replacing visit before.
function refreshTurboPage() {
  const Turbo = globalThis.Turbo
  if (!Turbo || typeof document === "undefined") return
  if (Turbo.session?.refresh) Turbo.session.refresh(document.baseURI)
  else Turbo.visit?.(window.location.href, { action: "replace" })
}

// ---------------------------------------------------------------------------
// <redisse-stream-source src="..." endpoint="...">: the Turbo Streams of its
// stream rendered in every tab. Like Turbo's <turbo-stream-source>, but on
// the shared client: its `turboStream` events are handed to Turbo's
// connectStreamSource as `message` events. The `state` attribute follows
// the stream's state.

/** The event type that Ruby's `Redisse.publish_turbo_stream` publishes. */
export const TURBO_STREAM_EVENT = "turboStream"

function defineStreamSourceElement() {
  class StreamSourceElement extends HTMLElement {
    connectedCallback() {
      const url = this.getAttribute("src")
      const endpoint = this.getAttribute("endpoint")
      const options = { withCredentials: this.hasAttribute("with-credentials") }
      if (this.hasAttribute("key")) options.key = this.getAttribute("key")
      this.stream = connect(endpoint ? { url, endpoint } : url, options)
      this.stream.addEventListener(TURBO_STREAM_EVENT, (event) => {
        this.dispatchEvent(new MessageEvent("message", { data: event.data }))
      })
      this.stream.addEventListener("statechange", (event) => this.setAttribute("state", event.detail.state))
      this.setAttribute("state", this.stream.state)
      whenTurbo((Turbo) => {
        if (this.stream) Turbo.connectStreamSource(this)
      })
    }

    disconnectedCallback() {
      this.stream?.close()
      this.stream = null
      globalThis.Turbo?.disconnectStreamSource(this)
    }
  }
  customElements.define("redisse-stream-source", StreamSourceElement)
}

// Turbo, once loaded: a module that imports it after this one is evaluated
// later, and Turbo announces itself with turbo:load.
function whenTurbo(callback) {
  if (globalThis.Turbo) return callback(globalThis.Turbo)
  document.addEventListener("turbo:load", () => globalThis.Turbo && callback(globalThis.Turbo), { once: true })
}

if (typeof customElements !== "undefined" && !customElements.get("redisse-stream-source")) {
  defineStreamSourceElement()
}
