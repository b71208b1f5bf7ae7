# frozen_string_literal: true

require "forwardable"
require "json"
require "rbconfig"
require "tempfile"
require_relative "lifeline_process"
require_relative "free_port"
require_relative "sse_reader"

# A `redisse` server in a child process (a LifelineProcess), on a port of
# 127.0.0.1: the gem's executable (`ruby -Ilib exe/redisse`), the plain
# binary (`target/release/redisse`), or any command given that takes the
# server's options (a Ruby script calling `Redisse.run`). It can be stopped
# and started again on the same port.
class ServerProcess
  extend Forwardable

  ROOT = File.expand_path("../..", __dir__)
  KINDS = {
    gem: [RbConfig.ruby, "-I", File.join(ROOT, "lib"), File.join(ROOT, "exe", "redisse")],
    binary: [File.join(ROOT, "target", "release", "redisse")]
  }.freeze
  START_TIMEOUT = 15 # seconds

  attr_reader :name, :port

  # @param kind [:gem, :binary] which build, unless `command` is given
  # @param command [Array<String>, nil] a command to run instead, before the options
  # @param redis_url [String, nil] given with --redis; nil: none given,
  #   the server reads REDISSE_REDIS from `env`
  # @param port [Integer]
  # @param heartbeat [Numeric, nil] --heartbeat; nil: the server's default
  # @param args [Array<String>] more options
  # @param env [Hash] environment of the child
  # @param log [String, nil] the log file (appended to); nil: a temporary one
  def initialize(redis_url:, kind: :gem, command: nil, port: free_port, heartbeat: 0.2, args: [], env: {}, log: nil)
    @name = command ? "server" : "#{kind} server"
    @prefix = command || KINDS.fetch(kind)
    @redis_url = redis_url
    @port = port
    @heartbeat = heartbeat
    @args = args
    @temp_log = Tempfile.new(["redisse-server", ".log"]).tap(&:close) unless log
    @process = LifelineProcess.new(name, command_line, log: log || @temp_log.path, env: env, chdir: ROOT)
  end

  # The server's command and its options.
  def command_line
    options = ["--address", "127.0.0.1", "--port", @port.to_s, "--stdout", "--verbose"]
    options += ["--redis", @redis_url] if @redis_url
    options += ["--heartbeat", @heartbeat.to_s] if @heartbeat
    @prefix + options + @args
  end

  # Starts the server and waits until its stats answer and, unless
  # `redis: false`, until it is connected to Redis.
  # @return [self]
  def start(redis: true)
    raise "the #{name} is already running" if running?

    @process.start
    @process.wait_until_ready("the stats of the #{name} on port #{@port} answer", timeout: START_TIMEOUT) { stats_text }
    if redis
      @process.wait_until_ready("the #{name} is connected to Redis", timeout: START_TIMEOUT) { healthy? }
    end
    self
  rescue StandardError
    stop
    raise
  end

  def_delegators :@process, :pid, :running?, :stop, :log, :log_tail

  # The stats body, or nil when the server does not answer.
  def stats_text
    response = SseReader.fetch(@port, "/", { "Accept" => "application/json" })
    response.body if response&.status == 200
  end

  # The stats as a Hash (e.g. `stats["connected"]`).
  def stats
    JSON.parse(stats_text || raise("no stats from the #{name}; log:\n#{log}"))
  end

  # The value of one of its Prometheus metrics now (e.g.
  # `metric("redisse_requests_abandoned_total")`).
  def metric(name)
    text = SseReader.fetch(@port, "/metrics", { "Accept" => "text/plain" })&.body || raise("no metrics from the #{name}; log:\n#{log_tail}")
    Integer(text[/^#{Regexp.escape(name)} (\d+)$/, 1] || raise("#{name} missing from:\n#{text}"))
  end

  # Opens a stream (a new connection).
  def open_stream(path, headers = {}, **options)
    SseReader.new(@port, path, headers, **options)
  end

  # Whether `/health` says both of its Redis connections are up. Unlike a
  # stream request, it needs no channel, nor a token from a server that has
  # a secret.
  def healthy?
    SseReader.fetch(@port, "/health", { "Accept" => "application/json" })&.status == 200
  end

  # The status of a stream request, the connection closed at once; nil when
  # nothing answers.
  def probe_status(path)
    SseReader.fetch(@port, path, head_only: true)&.status
  end

  # Sends SIGTERM; waits for the exit, up to `timeout` seconds.
  # @return [Process::Status, nil] nil if it did not exit in time
  def terminate(timeout:)
    @process.signal("TERM")
    @process.wait_for_exit(timeout: timeout)
  end
end
