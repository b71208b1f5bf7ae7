import { test } from "node:test"
import assert from "node:assert/strict"
import { SIGNED_EXPIRES_AT, SIGNED_URL, readToken, streamKey, withLastEventId } from "./support.mjs"

test("puts lastEventId first in the query, replacing one already there", () => {
  assert.equal(withLastEventId("/events", "12"), "/events?lastEventId=12")
  assert.equal(withLastEventId("https://e.test/?lastEventId=3&token=AZ", "12"), "https://e.test/?lastEventId=12&token=AZ")
  assert.equal(withLastEventId("https://e.test/?polling&token=AZ#top", "12"), "https://e.test/?lastEventId=12&polling&token=AZ")
})

test("leaves redirect-mode channel items as they are: no `=` added", () => {
  assert.equal(withLastEventId("/redisse/?global&user%3A1&lastEventId", "5"), "/redisse/?lastEventId=5&global&user%3A1")
})

test("leaves a URL alone without an id, its own lastEventId included", () => {
  assert.equal(withLastEventId("/events?lastEventId=42", ""), "/events?lastEventId=42")
  assert.equal(withLastEventId("/events", null), "/events")
})

test("reads the channels and the expiry of a token the gem signed", () => {
  assert.deepEqual(readToken(SIGNED_URL), { channels: ["global", "user:1"], expiresAt: SIGNED_EXPIRES_AT })
})

test("reads nothing from a URL without a token, or with a token of another version", () => {
  assert.equal(readToken("https://e.test/?global"), null)
  const bytes = Buffer.from(new URL(SIGNED_URL).searchParams.get("token"), "base64url")
  bytes[0] = 2
  assert.equal(readToken(`https://e.test/?token=${bytes.toString("base64url")}`), null)
  assert.equal(readToken("https://e.test/?token=@@@"), null)
})

test("keys a signed stream by its server and channels, whatever the token's expiry", () => {
  const key = streamKey(SIGNED_URL)
  assert.equal(key, 'https://events.example.com/ ["global","user:1"]')
  assert.notEqual(streamKey(SIGNED_URL.replace("events.example.com", "other.example.com")), key)
})

test("keys an unsigned stream by its URL without lastEventId", () => {
  const base = "https://app.test/page"
  assert.equal(streamKey("/events?lastEventId=4", base), streamKey("/events", base))
  assert.notEqual(streamKey("/events?streams=a", base), streamKey("/events?streams=b", base))
})
