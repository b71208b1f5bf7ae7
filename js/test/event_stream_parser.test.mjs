import { test } from "node:test"
import assert from "node:assert/strict"
import { parseChunks, splitsOf } from "./support.mjs"

const STREAM = "id: 41\nevent: notice\ndata: first line\ndata: second line\n\n: hb\nid: 42\ndata: é\n\n"

test("reads the event text the server writes: id, type, data lines", () => {
  const { events, comments } = parseChunks([STREAM])
  assert.deepEqual(events, [
    { type: "notice", data: "first line\nsecond line", id: "41" },
    { type: "message", data: "é", id: "42" }
  ])
  assert.deepEqual(comments, ["hb"])
})

test("reads the same events wherever the network cuts the bytes, inside a UTF-8 character too", () => {
  const whole = parseChunks([STREAM]).events
  for (const chunks of splitsOf(STREAM)) assert.deepEqual(parseChunks(chunks).events, whole)
})

test("takes CR LF, LF and a lone CR as line ends, a CR LF cut between two chunks too", () => {
  const expected = [{ type: "a", data: "1", id: "7" }, { type: "b", data: "2", id: null }]
  assert.deepEqual(parseChunks(["id: 7\r\nevent: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r"]).events, expected)
  assert.deepEqual(parseChunks(["id: 7\r", "\nevent: a\r", "\ndata: 1\r", "\n\r", "\nevent: b\ndata: 2\n\n"]).events, expected)
})

test("dispatches nothing for an event without data, and keeps the empty data line of a control event", () => {
  const { events } = parseChunks(["event: nothing\n\nevent: missedevents\ndata: \n\nid: 9\nevent: lastEventId\ndata: \n\n"])
  assert.deepEqual(events, [
    { type: "missedevents", data: "", id: null },
    { type: "lastEventId", data: "", id: "9" }
  ])
})

test("skips a byte order mark at the start, reads retry, ignores unknown fields and an id with NUL", () => {
  const { events, retries } = parseChunks(["\ufeffretry: 2500\nfoo: bar\nid: a\0b\ndata:x\n\n"])
  assert.deepEqual(events, [{ type: "message", data: "x", id: null }])
  assert.deepEqual(retries, [2500])
})
