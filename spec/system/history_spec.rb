# frozen_string_literal: true

require_relative "../support/system/system_helpers"

# What a stream sends before its live events (SPEC §2, "Stream contents").
RSpec.describe "A stream's opening", :system do
  with_server

  describe "missedevents" do
    it "comes first when the history no longer reaches back to the last event id" do
      ids = Array.new(105) { |i| Redisse.publish(:long, "event #{i + 1}") }
      expect(ids).to eq((1..105).to_a)

      reader = open_stream(server, "/?long", { "Last-Event-Id" => "2" })
      events = reader.wait_for_events(101)

      expect(events.first.raw).to eq("event: missedevents\ndata: \n\n")
      expect(events.first.id).to be_nil
      expect(ids_of(events.drop(1))).to eq((6..105).to_a)
      expect(events.drop(1).map(&:raw)).to eq((6..105).map { |id| event_text(id, "event #{id}") })
      expect(reader.read_for(0.2).events.size).to eq(101)
    end

    it "comes first when the last event id belongs to a channel the stream does not listen to" do
      Redisse.publish(:mine, "1")
      Redisse.publish(:other, "2")
      Redisse.publish(:mine, "3")

      events = open_stream(server, "/?mine&lastEventId=2").wait_for_events(2)

      expect(events.map(&:type)).to eq(%w[missedevents message])
      expect(events.last.raw).to eq(event_text(3, "3"))
    end

    it "is not sent when the client's last event is still in the history" do
      3.times { |i| Redisse.publish(:kept, i.to_s) }

      reader = open_stream(server, "/?kept", { "Last-Event-Id" => "1" })

      expect(reader.wait_for_events(2).map(&:type)).to eq(%w[message message])
      expect(ids_of(reader.events)).to eq([2, 3])
    end
  end

  describe "the last event id" do
    before { 5.times { |i| Redisse.publish(:given, i.to_s) } }

    it "is the last lastEventId of the query when it is repeated, as 0.4 read it" do
      reader = open_stream(server, "/?given&lastEventId=1&lastEventId=3")

      expect(ids_of(reader.wait_for_events(2))).to eq([4, 5])
    end

    it "is the Last-Event-Id header over any query parameter" do
      reader = open_stream(server, "/?given&lastEventId=1&lastEventId=2", { "Last-Event-Id" => "4" })

      expect(ids_of(reader.wait_for_events(1))).to eq([5])
    end
  end

  describe "the lastEventId event" do
    it "tells a client without a last event id where the counter is" do
      3.times { Redisse.publish(:elsewhere, "x") }

      reader = open_stream(server, "/?quiet")

      expect(reader.wait_for_events(1).first.raw).to eq("id: 3\nevent: lastEventId\ndata: \n\n")
      Redisse.publish(:quiet, "live")
      expect(reader.wait_for_events(2).last.raw).to eq(event_text(4, "live"))
    end

    it "is sent when the client is up to date" do
      2.times { Redisse.publish(:uptodate, "x") }
      Redisse.publish(:elsewhere, "x")

      events = open_stream(server, "/?uptodate", { "Last-Event-Id" => "2" }).wait_for_events(1)

      expect(events.first.raw).to eq("id: 3\nevent: lastEventId\ndata: \n\n")
    end

    it "is not sent, nor anything else, when Redis holds no counter" do
      expect(redis.get("redisse:lastEventId")).to be_nil
      reader = open_stream(server, "/?empty")
      Redisse.publish(:empty, "first")

      # The first thing on the stream is the live event.
      reader.wait_for_events(1)
      expect(reader.body_without_comments).to eq(event_text(1, "first"))
    end
  end

  # Redis lost its data (restarted without persistence, flushed): browsers
  # come back with a Last-Event-Id above the counter.
  describe "a last event id above the counter" do
    it "does not hold back the live events that follow the lastEventId event" do
      2.times { Redisse.publish(:reset, "before") }

      reader = open_stream(server, "/?reset", { "Last-Event-Id" => "7" })
      expect(reader.wait_for_events(1).first.raw).to eq("id: 2\nevent: lastEventId\ndata: \n\n")
      Redisse.publish(:reset, "after")

      # The stream said the client is at 2: event 3 comes next.
      expect(reader.wait_for_events(2, timeout: 2).last.raw).to eq(event_text(3, "after"))
    end

    it "does not hold back live events when Redis holds no counter" do
      reader = open_stream(server, "/?reset&lastEventId=7")
      Redisse.publish(:reset, "first")

      # As the 0.4 server did: live events go out as they are.
      reader.wait_for_events(1, timeout: 2)
      expect(reader.body_without_comments).to eq(event_text(1, "first"))
    end
  end

  describe "ids" do
    it "never repeats an id on a stream, nor goes back, while events are being published" do
      Redisse.publish(:busy, "seed")
      readers = []
      publisher = Thread.new do
        Array.new(150) do |i|
          sleep 0.002 # a steady rate, so that streams open mid-flow
          Redisse.publish(:busy, "event #{i}")
        end
      end
      10.times do |i|
        # Streams with a recent last id (in the history), and without one.
        last = [redis.get("redisse:lastEventId").to_i - 3, 1].max
        headers = i.even? ? { "Last-Event-Id" => last.to_s } : {}
        readers << [open_stream(server, "/?busy", headers), i.even? ? last : nil]
      end
      published = publisher.value
      final = Redisse.publish(:busy, "final")

      readers.each do |reader, last|
        reader.wait_for("the final event", timeout: 15) { reader.events.any? { |e| e.id_i == final } }
        ids = ids_of(reader.events)
        expect(ids.each_cons(2)).to all(satisfy { |a, b| a < b })
        # Every event after the id the stream started from, exactly once.
        first = last ? last + 1 : ids.first
        first += 1 if reader.events.first.type == "lastEventId"
        expect(ids.drop_while { |id| id < first }).to eq((first..final).to_a)
        expect(reader.events.drop(1).map(&:type)).to all(eq("message"))
        expect(reader.events.map(&:type)).not_to include("missedevents")
      end
      expect(published.last).to eq(final - 1)
    end
  end
end
