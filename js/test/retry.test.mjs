import { test } from "node:test"
import assert from "node:assert/strict"
import { parseRetryAfter, randomFrom, retryDelay } from "./support.mjs"

test("doubles from the initial delay up to the maximum, between half and all of it", () => {
  const low = (attempt) => retryDelay(attempt, { random: () => 0 })
  const high = (attempt) => retryDelay(attempt, { random: () => 1 })
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map(low), [500, 1000, 2000, 4000, 8000, 15000, 15000])
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map(high), [1000, 2000, 4000, 8000, 16000, 30000, 30000])
  assert.equal(retryDelay(1000, { random: () => 1 }), 30000, "no overflow after many attempts")
})

test("spreads retries: two draws give two delays", () => {
  const random = randomFrom(0.1, 0.9)
  assert.notEqual(retryDelay(3, { random }), retryDelay(3, { random }))
})

test("never retries before Retry-After, and spreads those retries by up to a quarter", () => {
  assert.equal(retryDelay(0, { retryAfter: 5000, random: () => 0 }), 5000)
  assert.equal(retryDelay(0, { retryAfter: 5000, random: () => 1 }), 6250)
  assert.equal(retryDelay(6, { retryAfter: 5000, random: () => 1 }), 30000, "the backoff wins when longer")
})

test("reads Retry-After as seconds or as a date", () => {
  const now = Date.parse("2030-01-01T00:00:00Z")
  assert.equal(parseRetryAfter("5", now), 5000)
  assert.equal(parseRetryAfter(" 0 ", now), 0)
  assert.equal(parseRetryAfter("Tue, 01 Jan 2030 00:00:30 GMT", now), 30000)
  assert.equal(parseRetryAfter("Mon, 31 Dec 2029 00:00:00 GMT", now), 0, "a date past is now")
  assert.equal(parseRetryAfter(null, now), null)
  assert.equal(parseRetryAfter("soon", now), null)
})
