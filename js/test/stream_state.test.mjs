import { test } from "node:test"
import assert from "node:assert/strict"
import { STATES, StreamState } from "./support.mjs"

function run(inputs) {
  const machine = new StreamState()
  return inputs.map((input) => machine.apply(input))
}

test("opens, renews and opens again, loses the stream and reconnects", () => {
  assert.deepEqual(run(["opened", "renewing", "opened", "lost", "lost", "opened"]),
    ["open", "renewing", "open", "connecting", "connecting", "open"])
})

test("reports a gap as its own state, then open again", () => {
  assert.deepEqual(run(["opened", "gap", "opened"]), ["open", "gap", "open"])
})

test("stays renewing while the old stream is lost during a renewal", () => {
  assert.deepEqual(run(["opened", "renewing", "lost", "opened"]), ["open", "renewing", "renewing", "open"])
})

test("refuses inputs that do not apply, and leaves the state as it was", () => {
  const machine = new StreamState()
  assert.equal(machine.apply("renewing"), null, "nothing to renew before it opened")
  assert.equal(machine.apply("gap"), null)
  assert.equal(machine.state, "connecting")
})

test("ends in closed, whatever comes next", () => {
  for (const ending of ["failed", "closed"]) {
    const machine = new StreamState()
    machine.apply("opened")
    assert.equal(machine.apply(ending), "closed")
    for (const input of ["opened", "renewing", "gap", "lost", "failed", "closed"]) assert.equal(machine.apply(input), null)
    assert.equal(machine.mirror("open"), false, "a closed follower stays closed")
    assert.equal(machine.state, "closed")
  }
})

test("mirrors only the states there are", () => {
  const machine = new StreamState()
  assert.equal(machine.mirror("renewing"), true)
  assert.equal(machine.mirror("flying"), false)
  assert.equal(machine.state, "renewing")
  assert.deepEqual(STATES, ["connecting", "open", "renewing", "gap", "closed"])
})
