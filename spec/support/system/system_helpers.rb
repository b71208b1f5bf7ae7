# frozen_string_literal: true

require "redis"

# Helpers of the system specs, which talk over TCP to a real `redisse`
# server (a ServerProcess) on a real redis-server.
module SystemSpecHelpers
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
    output, status = run_command("redis-cli", "-h", "127.0.0.1", "-p", port.to_s, *args.map(&:to_s), timeout: 5)
    raise "redis-cli #{args.inspect} failed: #{output}" unless status.success?

    output
  end

  # The stats JSON of SPEC §2, byte for byte.
  def stats_json(connected:, events:, served:, missing:)
    "{\n  \"connected\": #{connected},\n  \"events\":    #{events},\n  " \
      "\"served\":    #{served},\n  \"missing\":   #{missing}\n}"
  end

  # Waits until the server counts no open stream (the streams of earlier
  # examples are gone).
  def wait_for_no_streams(server, timeout: 5)
    wait_until("the server has no open stream", timeout: timeout) { server.stats["connected"].zero? }
  end

  def ids_of(events)
    events.map(&:id_i)
  end
end

# Of the example groups of the system specs.
module SystemSpecGroups
  # One server for the group's examples, as `server`: the gem's executable
  # on the spec Redis, unless `options` (for ServerProcess.new) say otherwise.
  def with_server(**options)
    before(:all) { @server = ServerProcess.new(**{ kind: :gem, redis_url: REDIS_SERVER.url }.merge(options)).start }
    after(:all) { @server&.stop }
    let(:server) { @server }
  end
end

RSpec.configure do |config|
  config.include SystemSpecHelpers, :system
  config.extend SystemSpecGroups, :system
end
