# frozen_string_literal: true

require "redis"
require_relative "sse_reader"
require_relative "server_process"

# Helpers of the system specs: a real redis-server (the harness of
# spec/support/redis_server.rb) and a real `redisse` server process,
# talked to over TCP.
module SystemSpecHelpers
  # The event text of SPEC §1, as the 0.4 gem wrote it.
  def event_text(id, data, type: "message")
    lines = data.to_s.split("\n", -1)
    lines = [""] if lines.empty?
    "id: #{id}\nevent: #{type}\n#{lines.map { |line| "data: #{line}\n" }.join}\n"
  end

  # Publishes like the 0.4 gem did, in four round trips, through a
  # redis-rb client. Channel names may be any bytes.
  # @return [Integer] the event id
  def publish_old_way(client, channel, data, type: "message")
    id = client.incr("redisse:lastEventId")
    text = event_text(id, data, type: type)
    client.publish(channel, text)
    client.zadd(channel, id, text)
    client.zremrangebyrank(channel, 0, -101)
    id
  end

  # Runs `redis-cli -p PORT args...`; fails unless it succeeds within 5 s.
  # @return [String] its output
  def redis_cli(port, *args)
    output = Tempfile.new("redis-cli")
    pid = Process.spawn("redis-cli", "-h", "127.0.0.1", "-p", port.to_s, *args.map(&:to_s),
                        out: output.path, err: [:child, :out], in: File::NULL)
    status = wait_until("redis-cli #{args.first} exits", timeout: 5) { Process.wait2(pid, Process::WNOHANG)&.last }
    text = File.read(output.path)
    raise "redis-cli #{args.inspect} failed: #{text}" unless status.success?

    text
  ensure
    if pid && status.nil?
      Process.kill("KILL", pid)
      Process.wait(pid)
    end
    output&.close!
  end

  # The stats JSON of SPEC §2, byte for byte.
  def stats_json(connected:, events:, served:, missing:)
    "{\n  \"connected\": #{connected},\n  \"events\":    #{events},\n  " \
      "\"served\":    #{served},\n  \"missing\":   #{missing}\n}"
  end

  # Opens a stream on `server`, reads its head, and closes it after the example.
  def open_stream(server, path, headers = {}, head: true, **options)
    reader = server.open_stream(path, headers, **options)
    (@open_readers ||= []) << reader
    reader.read_head if head
    reader
  end

  def close_streams
    @open_readers&.each(&:close)
    @open_readers = []
  end

  # Waits until the server counts no open stream (the streams of earlier
  # examples, and the readiness probe, are gone).
  def wait_for_no_streams(server, timeout: 5)
    wait_until("the server has no open stream", timeout: timeout) { server.stats["connected"].zero? }
  end

  def ids_of(events)
    events.map(&:id_i)
  end
end

RSpec.configure do |config|
  config.include SystemSpecHelpers, :system
  config.after(:each, :system) { close_streams }
end
