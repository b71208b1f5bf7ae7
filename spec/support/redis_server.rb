# frozen_string_literal: true

require "redis"
require "socket"
require "tmpdir"
require "fileutils"
require_relative "free_port"

# A throwaway redis-server for the specs, on a free port, without
# persistence. It can be stopped and started again on the same port to
# simulate Redis going away.
class RedisServerHarness
  START_TIMEOUT = 10 # seconds

  attr_reader :port

  def initialize
    @port = free_port
    @dir = Dir.mktmpdir("redisse-spec-redis")
    @owner_pid = Process.pid
  end

  # @param password [String, nil] the URL with this password in it
  def url(password: nil)
    auth = password ? ":#{password}@" : ""
    "redis://#{auth}127.0.0.1:#{port}/"
  end

  def start
    return if running?

    # redis-server runs under a shell that stops it as soon as the pipe
    # from this process closes, so that it never outlives the spec run,
    # even when the Ruby process dies without running at_exit hooks.
    lifeline_reader, @lifeline = IO.pipe
    @pid = Process.spawn(
      "sh", "-c", 'redis-server "$@" & server=$!; read _; kill $server; wait $server', "sh",
      "--port", port.to_s, "--bind", "127.0.0.1",
      "--save", "", "--appendonly", "no", "--dir", @dir,
      in: lifeline_reader, out: File::NULL, err: File::NULL
    )
    lifeline_reader.close
    wait_until("redis-server answers PING on port #{port}") { ping }
  end

  def stop
    return unless running?

    @lifeline.close
    Process.wait(@pid)
    @pid = nil
    # The port must be free again before a restart can bind it.
    wait_until("port #{port} is free") { !ping }
  end

  # Stops the server for good; does nothing in forked children, which do
  # not own it.
  def shutdown
    return unless Process.pid == @owner_pid

    stop
    FileUtils.rm_rf(@dir)
  end

  def running?
    !@pid.nil?
  end

  # A new client on the given database.
  def client(db: 0)
    Redis.new(url: url, db: db, timeout: 5)
  end

  private

  def ping
    redis = Redis.new(url: url, connect_timeout: 0.2, timeout: 0.5, reconnect_attempts: 0)
    redis.ping == "PONG"
  rescue Redis::BaseConnectionError, Errno::ECONNREFUSED
    false
  ensure
    redis&.close
  end

  def wait_until(what)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + START_TIMEOUT
    until yield
      raise "timed out waiting until #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.02
    end
  end
end
