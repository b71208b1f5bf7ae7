# frozen_string_literal: true

require "redis"
require "tmpdir"
require "fileutils"
require_relative "lifeline_process"
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

    stop # reaps a server that died
    @process = LifelineProcess.new(
      "redis-server",
      ["redis-server", "--port", port.to_s, "--bind", "127.0.0.1",
       "--save", "", "--appendonly", "no", "--dir", @dir],
      log: File.join(@dir, "redis.log"), chdir: @dir
    ).start
    @process.wait_until_ready("redis-server answers PING on port #{port}", timeout: START_TIMEOUT) { ping }
  end

  # Freezes the server (SIGSTOP): it accepts connections but answers nothing.
  def pause
    @process&.signal("STOP")
  end

  # Lets a paused server go on (SIGCONT).
  def resume
    @process&.signal("CONT")
  end

  # Stops the server; once it has exited, its port is free for #start.
  def stop
    resume # a paused server would not see its SIGTERM
    @process&.stop
    @process = nil
  end

  # Stops the server for good; does nothing in forked children, which do
  # not own it.
  def shutdown
    return unless Process.pid == @owner_pid

    stop
    FileUtils.rm_rf(@dir)
  end

  def running?
    @process&.running? || false
  end

  # The redis-server's own pid (not its shell's).
  def pid
    @process&.pid
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
end
