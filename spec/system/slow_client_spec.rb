# frozen_string_literal: true

require_relative "../support/system/system_helpers"

# A client that stops reading must neither hold back the others nor grow
# the server's memory: its queue is bounded (4096 events or 1 MiB), and
# past that the server drops it.
RSpec.describe "A client that stops reading", :system do
  with_server

  it "does not hold back a fast reader, and is dropped" do
    wait_for_no_streams(server)
    # A small receive buffer, and never read after the head.
    slow = open_stream(server, "/?firehose", {}, rcvbuf: 4096)
    fast = open_stream(server, "/?firehose")
    expect(server.stats["connected"]).to eq(2)

    payload = "x" * 65_536
    ids = []
    took = elapsed do
      300.times do |i|
        ids << Redisse.publish(:firehose, "#{i} #{payload}")
        # At most 8 events (512 KiB) on their way to the fast reader: it
        # keeps up by construction, whatever the socket buffers.
        fast.wait_for_events(ids.size - 8, timeout: 10) if ids.size > 8
      end
      fast.wait_for_events(300, timeout: 10)
    end

    expect(took).to be < 30
    expect(ids_of(fast.events)).to eq(ids)
    expect(fast.events.map(&:data)).to eq(Array.new(300) { |i| "#{i} #{payload}" })
    wait_until("the server drops the slow client", timeout: 10) { server.stats["connected"] == 1 }
    expect(fast.pump).not_to be_finished

    # What the slow client got is a prefix of the events, then the connection ends.
    slow.wait_until_finished(timeout: 10)
    expect(slow).to be_eof
    expect(ids_of(slow.events)).to eq(ids.first(slow.events.size))
    expect(slow.events.size).to be < 300
  end
end
