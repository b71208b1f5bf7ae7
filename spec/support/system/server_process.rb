# frozen_string_literal: true

require "json"
require_relative "../free_port"
require "net/http"
require "rbconfig"
require "socket"
require "tempfile"
require_relative "sse_reader"

# A `redisse` server in a child process, on a free port of 127.0.0.1:
# either the gem's executable (`ruby -Ilib exe/redisse`) or the plain
# binary (`target/release/redisse`).
class ServerProcess
  ROOT = File.expand_path("../../..", __dir__)
  KINDS = {
    gem: [RbConfig.ruby, "-I", File.join(ROOT, "lib"), File.join(ROOT, "exe", "redisse")],
    binary: [File.join(ROOT, "target", "release", "redisse")]
  }.freeze
  START_TIMEOUT = 15
  STOP_TIMEOUT = 5
  PROBE_CHANNEL = "system-spec-probe"

  attr_reader :kind, :port, :pid, :exit_status

  # @param kind [:gem, :binary]
  # @param redis_url [String, nil] given with --redis; nil: none given,
  #   the server reads REDISSE_REDIS from `env`
  # @param heartbeat [Numeric, nil] --heartbeat
  # @param args [Array<String>] more options
  # @param env [Hash] environment of the child
  def initialize(kind:, redis_url:, heartbeat: 0.2, args: [], env: {})
    @kind = kind
    @redis_url = redis_url
    @heartbeat = heartbeat
    @args = args
    @env = env
    @log = Tempfile.new(["redisse-system", ".log"])
  end

  def command
    options = ["--address", "127.0.0.1", "--port", @port.to_s, "--stdout", "--verbose"]
    options += ["--redis", @redis_url] if @redis_url
    options += ["--heartbeat", @heartbeat.to_s] if @heartbeat
    KINDS.fetch(@kind) + options + @args
  end

  # Starts the server and waits until its stats answer and, unless
  # `redis: false`, until it is connected to Redis (streams stop answering 503).
  def start(redis: true)
    @port = free_port
    @pid = Process.spawn(@env, *command, out: @log.path, err: @log.path, in: File::NULL)
    wait_until("the stats of #{@kind} server on port #{@port} answer", START_TIMEOUT) { stats_text }
    wait_until("the #{@kind} server is connected to Redis", START_TIMEOUT) { probe_status != 503 } if redis
    self
  rescue StandardError
    stop
    raise
  end

  def running?
    return false unless @pid

    reap
    @exit_status.nil?
  end

  # The stats body, or nil when the server does not answer.
  def stats_text
    raise "the #{@kind} server exited (#{@exit_status.inspect}); log:\n#{log}" unless running?

    response = Net::HTTP.start("127.0.0.1", @port, open_timeout: 1, read_timeout: 2) do |http|
      http.get("/", "Accept" => "application/json")
    end
    response.body if response.is_a?(Net::HTTPOK)
  rescue SystemCallError, Net::OpenTimeout, Net::ReadTimeout, EOFError
    nil
  end

  # The stats as a Hash (e.g. `stats["connected"]`).
  def stats
    JSON.parse(stats_text || raise("no stats from the #{@kind} server"))
  end

  # Opens a stream (a new connection).
  def open_stream(path, headers = {}, **options)
    SseReader.new(@port, path, headers, **options)
  end

  # The status of a stream request, the connection closed at once.
  def probe_status(path = "/?#{PROBE_CHANNEL}")
    reader = open_stream(path)
    reader.read_head(timeout: 2).status
  rescue SseReader::Timeout, SystemCallError
    nil
  ensure
    reader&.close
  end

  # Sends SIGTERM; waits for the exit, up to `timeout` seconds.
  # @return [Process::Status, nil] nil if it did not exit in time
  def terminate(timeout: STOP_TIMEOUT)
    signal("TERM")
    wait_for_exit(timeout)
  end

  # Kills the server if it still runs; bounded.
  def stop
    return unless @pid

    unless reap
      signal("KILL")
      wait_for_exit(STOP_TIMEOUT)
    end
  ensure
    @log.close
  end

  def log
    File.read(@log.path)
  rescue SystemCallError
    ""
  end

  private

  def signal(name)
    Process.kill(name, @pid) if running?
  rescue Errno::ESRCH
    nil
  end

  # @return [Process::Status, nil]
  def reap
    return @exit_status if @exit_status

    _pid, status = Process.wait2(@pid, Process::WNOHANG)
    @exit_status = status
  rescue Errno::ECHILD
    @exit_status ||= :gone
  end

  def wait_for_exit(timeout)
    deadline = now + timeout
    until (status = reap)
      return nil if now > deadline

      sleep 0.01
    end
    status
  end

  def wait_until(what, timeout)
    deadline = now + timeout
    until yield
      raise "timed out waiting until #{what}; log:\n#{log}" if now > deadline

      sleep 0.02
    end
  end

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
