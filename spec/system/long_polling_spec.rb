# frozen_string_literal: true

require_relative "../support/system/system_helpers"

# `?polling`: the stream ends 1 s after its first event, so that events
# published close together arrive in one response.
RSpec.describe "Long polling", :system do
  with_server

  it "ends the response about 1 s after the first event, with a burst of events in it" do
    reader = open_stream(server, "/?poll&polling")
    Redisse.publish(:poll, "one")
    Redisse.publish(:poll, "two")

    first_at = reader.wait_for_events(1).first.at
    reader.wait_until_finished(timeout: 4)

    expect(reader.events.map(&:raw)).to eq([event_text(1, "one"), event_text(2, "two")])
    expect(reader.closed_at - first_at).to be_between(0.8, 3)
  end

  it "counts history events as the first event" do
    3.times { |i| Redisse.publish(:poll, "h#{i}") }

    reader = open_stream(server, "/?polling&poll&lastEventId=1")
    opened_at = monotonic_now
    reader.wait_until_finished(timeout: 4)

    expect(ids_of(reader.events)).to eq([2, 3])
    expect(reader.closed_at - opened_at).to be_between(0.8, 3)
  end

  it "stays open while no event comes, the lastEventId event not counting" do
    Redisse.publish(:elsewhere, "sets the counter")

    reader = open_stream(server, "/?poll&polling").read_for(2)

    expect(reader).not_to be_finished
    expect(reader.events.map(&:type)).to eq(%w[lastEventId])
    Redisse.publish(:poll, "late")
    reader.wait_until_finished(timeout: 4)
    expect(ids_of(reader.events)).to eq([1, 2])
  end
end
