# frozen_string_literal: true

require_relative "commands"
require_relative "redis_server"
require_relative "waiting"

# Helpers of every example (see spec_helper): Redisse modules and Redis
# clients on the spec Redis, the event text, and event streams closed after
# the example. `wait_until`, `elapsed` and `monotonic_now` come from
# Waiting, `run_command` from Commands.
module RedisseSpecHelpers
  include Commands
  include Waiting

  # A module with its own Redisse configuration and publisher, pointing at
  # the spec Redis.
  def new_redisse(**settings)
    Module.new { extend Redisse }.tap do |redisse|
      settings.each { |name, value| redisse.public_send("#{name}=", value) }
    end
  end

  # A redis-rb client on the spec Redis, to look at what was published.
  def redis(db: 0)
    @redis_clients ||= {}
    @redis_clients[db] ||= REDIS_SERVER.client(db: db)
  end

  def close_redis_clients
    @redis_clients&.each_value(&:close)
  end

  # The event text of SPEC §1, as the 0.4 gem wrote it and the server sends it.
  def event_text(id, data, type: "message")
    lines = data.to_s.split("\n", -1)
    lines = [""] if lines.empty?
    "id: #{id}\nevent: #{type}\n#{lines.map { |line| "data: #{line}\n" }.join}\n"
  end

  # Opens a stream on `server` (a ServerProcess, or a Deployment: through
  # nginx), reads its head unless `head: false`, and closes it after the
  # example.
  # @return [SseReader]
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
end
