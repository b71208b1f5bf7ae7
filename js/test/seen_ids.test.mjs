import { test } from "node:test"
import assert from "node:assert/strict"
import { SeenIds } from "./support.mjs"

test("lets each id through once, in any order", () => {
  const seen = new SeenIds()
  const delivered = ["7", "8", "7", "6", "8", "9", "6"].filter((id) => seen.add(id))
  assert.deepEqual(delivered, ["7", "8", "6", "9"])
})

test("forgets the oldest ids beyond its capacity, and only those", () => {
  const seen = new SeenIds(3)
  for (const id of ["1", "2", "3", "4"]) assert.equal(seen.add(id), true)
  assert.equal(seen.add("2"), false)
  assert.equal(seen.add("4"), false)
  assert.equal(seen.add("1"), true, "the oldest was forgotten")
})
