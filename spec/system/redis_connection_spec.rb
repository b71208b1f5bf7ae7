# frozen_string_literal: true

require_relative "../support/system/system_helpers"

# The server and its Redis: what happens when Redis is not there or goes
# away, and the connections and subscriptions it keeps. Each group has a
# redis-server of its own, so that nothing else is connected to it.
RSpec.describe "The server's Redis connections", :system do
  # Starts a redis-server and a server on it for the group.
  def self.with_own_redis
    before(:all) do
      @own_redis = RedisServerHarness.new
      @own_redis.start
      @server = ServerProcess.new(kind: :gem, redis_url: @own_redis.url).start
    end

    after(:all) do
      @server&.stop
      @own_redis&.shutdown
    end

    before do
      own_redis.start # in case a failed example left it stopped
      inspector.flushall
    end

    after { @inspector&.close }
  end

  let(:server) { @server }
  let(:own_redis) { @own_redis }
  let(:publisher) { new_redisse(redis_server: own_redis.url) }

  let(:inspector_name) { "system-spec-inspector" }

  # A redis-rb client on the group's Redis, named so that it can be told apart.
  def inspector
    @inspector ||= own_redis.client.tap { |client| client.call("CLIENT", "SETNAME", inspector_name) }
  end

  describe "when Redis is not up" do
    before(:all) do
      @server = ServerProcess.new(kind: :gem, redis_url: "redis://127.0.0.1:#{free_port}/").start(redis: false)
    end

    after(:all) { @server&.stop }

    it "answers streams with 503, and still answers stats" do
      reader = open_stream(server, "/?channel").wait_until_finished

      expect(reader.status).to eq(503)
      expect(reader.headers["content-type"]).to eq("text/plain")
      expect(reader.body).to eq("503 Service Unavailable\n")
      expect(server.stats).to include("connected" => 0)
    end
  end

  describe "when Redis goes away" do
    with_own_redis

    it "closes the streams, answers 503, then serves again once Redis is back" do
      streams = [open_stream(server, "/?gone"), open_stream(server, "/?gone&other")]
      publisher.publish(:gone, "before")
      streams.each { |stream| stream.wait_for_events(1) }

      own_redis.stop

      streams.each do |stream|
        stream.wait_until_finished(timeout: 5)
        expect(stream).to be_terminated.or be_eof
      end
      refused = open_stream(server, "/?gone").wait_until_finished
      expect(refused.status).to eq(503)
      expect(refused.body).to eq("503 Service Unavailable\n")

      own_redis.start
      wait_until("the server serves streams again", timeout: 10) { server.probe_status("/?gone") == 200 }
      reader = open_stream(server, "/?gone")
      expect(reader.status).to eq(200)
      # A new publisher: this example is about the server's connections.
      id = new_redisse(redis_server: own_redis.url).publish(:gone, "after")
      expect(reader.wait_for_events(1).last.raw).to eq(event_text(id, "after"))
    end
  end

  describe "with many streams" do
    with_own_redis

    it "uses exactly two Redis connections for 50 streams on 10 channels" do
      readers = Array.new(50) { |i| open_stream(server, "/?many_#{i % 10}&many_#{(i + 3) % 10}") }

      clients = inspector.call("CLIENT", "LIST").lines.map do |line|
        line.split.to_h { |field| field.split("=", 2) }
      end
      servers = clients.reject { |client| client["name"] == inspector_name }
      expect(servers.size).to eq(2), "clients: #{clients.inspect}"
      expect(servers.map { |client| client["sub"] }).to contain_exactly("10", "0")

      # Each channel subscribed once, and every stream served.
      numsub = inspector.call(["PUBSUB", "NUMSUB", *Array.new(10) { |i| "many_#{i}" }])
      expect(numsub.each_slice(2).map(&:last)).to all(eq(1))
      ids = Array.new(10) { |i| publisher.publish("many_#{i}", "to #{i}") }
      readers.each_with_index do |reader, i|
        expected = [ids[i % 10], ids[(i + 3) % 10]].sort
        expect(ids_of(reader.wait_for_events(2))).to eq(expected)
      end
    end

    it "unsubscribes a channel in Redis when its last stream leaves" do
      channels = -> { inspector.pubsub(:channels, "leave_*").sort }
      both = open_stream(server, "/?leave_a&leave_b")
      one = open_stream(server, "/?leave_b")
      expect(channels.call).to eq(%w[leave_a leave_b])

      both.close
      wait_until("leave_a is unsubscribed") { channels.call == %w[leave_b] }
      one.close
      wait_until("leave_b is unsubscribed") { channels.call.empty? }
    end
  end
end
