# frozen_string_literal: true

require "tmpdir"
require_relative "../support/system/system_helpers"

# The HTTP contract of SPEC §2, run against both builds of the server: the
# gem's executable (Ruby, through the native extension) and the plain binary.
RSpec.describe "The redisse server's contract", :system do
  shared_examples "a redisse server" do |kind, server_options|
    with_server(kind: kind, **server_options)

    describe "content negotiation" do
      it "answers 406 with a text/plain body when text/event-stream is not acceptable" do
        ["text/html", "text/event-stream;q=0, text/html"].each do |accept|
          reader = open_stream(server, "/?channel", { "Accept" => accept }).wait_until_finished

          expect(reader.status).to eq(406), "Accept: #{accept}"
          expect(reader.headers["content-type"]).to eq("text/plain")
          expect(reader.body).to eq("406 Not Acceptable\nThis resource can only be represented as text/event-stream.\n")
        end
      end

      it "answers 404 when the request names no channel" do
        ["/", "/?polling&lastEventId=3"].each do |path|
          reader = open_stream(server, path).wait_until_finished

          expect(reader.status).to eq(404), path
          expect(reader.headers["content-type"]).to eq("text/plain")
          expect(reader.body).to eq("404 Not Found\n")
        end
      end

      it "opens an event stream with the SSE headers, and keeps it open" do
        reader = open_stream(server, "/any/path?headers_channel")

        expect(reader.status).to eq(200)
        expect(reader.headers).to include(
          "content-type" => "text/event-stream",
          "cache-control" => "no-cache",
          "x-accel-buffering" => "no",
          "transfer-encoding" => "chunked"
        )
        expect(reader.read_for(0.3)).not_to be_finished
      end

      it "answers 400 with a text/plain message to a bad %-escape, and keeps serving" do
        reader = open_stream(server, "/?a%zz").wait_until_finished

        expect(reader.status).to eq(400)
        expect(reader.headers["content-type"]).to eq("text/plain")
        expect(reader.body).to start_with("400 Bad Request\n")
        expect(server.probe_status("/?a")).to eq(200)
      end
    end

    describe "stats" do
      it "are JSON in the 0.4 format, counting streams and the events written to them" do
        wait_for_no_streams(server)
        base = server.stats
        response = SseReader.fetch(server.port, "/", { "Accept" => "application/json" })
        expect(response.headers["content-type"]).to eq("application/json")
        expect(response.body).to eq(stats_json(connected: 0, events: base["events"],
                                               served: base["served"], missing: base["missing"]))

        # Redis is empty: no counter, so no `lastEventId` event.
        first = open_stream(server, "/?stats_a")
        second = open_stream(server, "/?stats_a&stats_b")
        Redisse.publish(:stats_a, "one")
        Redisse.publish(:stats_b, "two")
        Redisse.publish(:stats_a, "three")
        expect(ids_of(first.wait_for_events(2))).to eq([1, 3])
        expect(ids_of(second.wait_for_events(3))).to eq([1, 2, 3])
        # Heartbeats are not events.
        second.wait_for("a heartbeat", timeout: 3) { second.comments.include?("hb") }
        first.close
        wait_until("the server sees the first stream closed") { server.stats["connected"] == 1 }

        expect(server.stats_text).to eq(stats_json(connected: 1, events: base["events"] + 5,
                                                   served: base["served"] + 1, missing: base["missing"]))

        # `missedevents` and `lastEventId` events count as events.
        missing = open_stream(server, "/?stats_b", { "Last-Event-Id" => "1" })
        expect(missing.wait_for_events(2).map(&:type)).to eq(%w[missedevents message])
        counter = open_stream(server, "/?stats_c")
        expect(counter.wait_for_events(1).map(&:type)).to eq(%w[lastEventId])

        expect(server.stats_text).to eq(stats_json(connected: 3, events: base["events"] + 8,
                                                   served: base["served"] + 1, missing: base["missing"] + 1))
      end
    end

    describe "events" do
      it "sends the events of several channels on one stream in publish order, as stored" do
        reader = open_stream(server, "/?order_a&order_b&order_c")
        published = %i[order_a order_b order_c order_b order_x order_a order_c order_c order_a].map.with_index do |channel, i|
          [channel, Redisse.publish(channel, "event #{i}\nline two")]
        end
        expected = published.reject { |channel, _| channel == :order_x }
        stored = expected.map { |channel, id| redis.zrangebyscore(channel.to_s, id, id).first }

        events = reader.wait_for_events(expected.size)

        expect(ids_of(events)).to eq(expected.map(&:last))
        expect(events.map(&:raw)).to eq(stored)
        expect(events.map(&:data)).to all(match(/\Aevent \d\nline two\z/))
        expect(reader.read_for(0.2).events.size).to eq(expected.size)
      end

      it "sends heartbeat comments" do
        reader = open_stream(server, "/?heartbeat_channel")

        reader.wait_for("3 heartbeats", timeout: 3) { reader.comments.count("hb") >= 3 }

        expect(reader.body).to include(": hb\n")
        expect(reader.events).to be_empty
      end
    end

    describe "history" do
      before do
        @ids = Array.new(5) { |i| Redisse.publish(:history, "h#{i}") }
      end

      it "sends what follows the Last-Event-Id header" do
        events = open_stream(server, "/?history", { "Last-Event-Id" => "2" }).wait_for_events(3)

        expect(events.map(&:raw)).to eq([3, 4, 5].map { |id| event_text(id, "h#{id - 1}") })
      end

      it "sends what follows the lastEventId query parameter" do
        reader = open_stream(server, "/?history&lastEventId=2")

        expect(ids_of(reader.wait_for_events(3))).to eq([3, 4, 5])
        expect(reader.read_for(0.2).events.size).to eq(3)
      end

      it "prefers the header to the query parameter" do
        reader = open_stream(server, "/?lastEventId=1&history", { "Last-Event-Id" => "3" })

        expect(ids_of(reader.wait_for_events(2))).to eq([4, 5])
        expect(reader.read_for(0.2).events.size).to eq(2)
      end
    end

    describe "SIGTERM" do
      it "ends the streams cleanly, removes the pid file and exits 0 within 5 s" do
        Dir.mktmpdir("redisse-system") do |dir|
          pid_file = File.join(dir, "redisse.pid")
          own = ServerProcess.new(kind: kind, **server_options, args: ["--pid", pid_file]).start
          begin
            expect(File.read(pid_file).strip).to eq(own.pid.to_s)
            streams = Array.new(2) { open_stream(own, "/?sigterm") }
            Redisse.publish(:sigterm, "before")
            streams.each { |stream| stream.wait_for_events(1) }

            status = nil
            took = elapsed { status = own.terminate(timeout: 5) }

            expect(status).not_to be_nil, "still running after 5 s; log:\n#{own.log}"
            expect(status.exitstatus).to eq(0)
            expect(took).to be < 5
            streams.each do |stream|
              expect(stream.wait_until_finished(timeout: 1)).to be_terminated
            end
            expect(File.exist?(pid_file)).to be(false)
          ensure
            own.stop
          end
        end
      end
    end
  end

  describe "run as the gem's executable (Redis from REDISSE_REDIS)" do
    include_examples "a redisse server", :gem, { redis_url: nil, env: { "REDISSE_REDIS" => REDIS_SERVER.url } }
  end

  describe "run as the plain binary (Redis from --redis)" do
    include_examples "a redisse server", :binary, { redis_url: REDIS_SERVER.url }
  end
end
