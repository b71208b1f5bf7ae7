# frozen_string_literal: true

require "fileutils"
require "io/nonblock"
require "json"
require "net/http"
require "rbconfig"
require "socket"
require "tmpdir"
require_relative "../../support/redis_server"

# The example deployment on free ports of 127.0.0.1: redis-server, the
# redisse server, the example app (puma) and nginx in front of them, each
# a child process with its log in a temporary directory.
class Deployment
  ROOT = File.expand_path("../../..", __dir__)
  EXAMPLE = File.join(ROOT, "example")
  START_TIMEOUT = 20 # seconds
  STOP_TIMEOUT = 10 # seconds

  attr_reader :redis, :dir, :redisse_port, :app_port, :nginx_port

  def initialize
    @dir = Dir.mktmpdir("redisse-deployment")
    # nginx's workers do not run as root: they must reach the temp paths.
    File.chmod(0o755, @dir)
    @redis = RedisServerHarness.new
    @redisse_port = free_port
    @app_port = free_port
    @nginx_port = free_port
    @pids = {}
    @lifelines = {}
    @owner_pid = Process.pid
  end

  def start
    redis.start
    start_redisse
    start_app
    start_nginx
    self
  rescue StandardError
    # The error message holds the end of the logs.
    stop
    cleanup
    raise
  end

  # Stops everything; safe to call twice, and a no-op in forked children.
  def stop
    return unless Process.pid == @owner_pid

    %i[nginx app redisse].each { |name| stop_process(name) }
    redis.shutdown
  end

  def cleanup
    FileUtils.rm_rf(dir)
  end

  def redis_url
    redis.url
  end

  def url(path = "/")
    "http://127.0.0.1:#{nginx_port}#{path}"
  end

  # --- the redisse server ---------------------------------------------------

  def start_redisse
    spawn_process(
      :redisse,
      [RbConfig.ruby, "-I", File.join(ROOT, "lib"), File.join(ROOT, "exe/redisse"),
       "--stdout", "--verbose", "--address", "127.0.0.1", "--port", redisse_port.to_s,
       "--redis", redis_url],
      chdir: ROOT
    )
    wait_until("the redisse server answers on port #{redisse_port}", :redisse) { redisse_stats }
  end

  def stop_redisse
    stop_process(:redisse)
    wait_until("port #{redisse_port} is free", nil) { !port_open?(redisse_port) }
  end

  # The server's stats, or nil when it does not answer.
  def redisse_stats
    response = http_get(redisse_port, "/", "Accept" => "application/json")
    JSON.parse(response.body) if response&.code == "200"
  end

  # --- the app and nginx ------------------------------------------------------

  def start_app
    spawn_process(
      :app,
      ["puma", "--bind", "tcp://127.0.0.1:#{app_port}", "--environment", "production",
       "--threads", "1:8", File.join(EXAMPLE, "config.ru")],
      chdir: EXAMPLE,
      env: { "REDISSE_REDIS" => redis_url }
    )
    wait_until("puma answers on port #{app_port}", :app) { http_get(app_port, "/subscriptions")&.code == "200" }
  end

  def start_nginx
    config = File.join(dir, "nginx.conf")
    File.write(config, nginx_config)
    spawn_process(
      :nginx,
      ["nginx", "-p", dir, "-c", config, "-g", "daemon off; pid #{dir}/nginx.pid; error_log stderr;"],
      chdir: dir
    )
    wait_until("nginx answers on port #{nginx_port}", :nginx) { http_get(nginx_port, "/subscriptions")&.code == "200" }
  end

  def nginx_config
    File.read(File.join(EXAMPLE, "nginx.conf"))
        .gsub("{{PREFIX}}", dir)
        .gsub("{{LISTEN}}", "127.0.0.1:#{nginx_port}")
        .gsub("{{APP_ADDRESS}}", "127.0.0.1:#{app_port}")
        .gsub("{{REDISSE_ADDRESS}}", "127.0.0.1:#{redisse_port}")
  end

  # --- logs -------------------------------------------------------------------

  def log_path(name)
    File.join(dir, "#{name}.log")
  end

  # The end of every log, for failure messages.
  def log_tails(lines = 30)
    %i[redisse app nginx].map do |name|
      path = log_path(name)
      tail = File.exist?(path) ? File.readlines(path).last(lines).join : "(no log)\n"
      "--- #{name} (#{path})\n#{tail}"
    end.join
  end

  private

  # Runs the command under a shell that stops it (SIGTERM) as soon as the
  # pipe from this process closes: on #stop, or when the spec run dies
  # without cleaning up. The shell exits when the command does.
  LIFELINE_SCRIPT = <<~'SH'
    "$@" 3<&- </dev/null &
    child=$!
    { read -r _ <&3; kill -TERM "$child" 2>/dev/null; } &
    watcher=$!
    wait "$child"
    status=$?
    kill "$watcher" 2>/dev/null
    exit "$status"
  SH

  def spawn_process(name, command, chdir:, env: {})
    raise "#{name} is already running" if @pids[name]

    reader, lifeline = IO.pipe
    reader.nonblock = false # Ruby's pipes are non-blocking: `read` in sh would fail at once
    pid = Process.spawn(env, "sh", "-c", LIFELINE_SCRIPT, "sh", *command,
                        chdir: chdir, in: File::NULL, out: [log_path(name), "a"], err: [:child, :out],
                        3 => reader, pgroup: true)
    reader.close
    @pids[name] = pid
    @lifelines[name] = lifeline
  end

  def stop_process(name)
    pid = @pids.delete(name) or return

    @lifelines.delete(name).close
    deadline = monotonic_now + STOP_TIMEOUT
    until Process.wait(pid, Process::WNOHANG)
      if monotonic_now > deadline
        Process.kill("KILL", -pid) # the whole process group
        Process.wait(pid)
        break
      end
      sleep 0.02
    end
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  def wait_until(what, name)
    deadline = monotonic_now + START_TIMEOUT
    until yield
      if name && @pids[name] && Process.wait(@pids[name], Process::WNOHANG)
        @pids.delete(name)
        @lifelines.delete(name).close
        raise "#{name} exited while waiting until #{what}\n#{log_tails}"
      end
      raise "timed out waiting until #{what}\n#{log_tails}" if monotonic_now > deadline

      sleep 0.05
    end
  end

  def http_get(port, path, headers = {})
    Net::HTTP.start("127.0.0.1", port, open_timeout: 0.5, read_timeout: 2) do |http|
      http.get(path, headers)
    end
  rescue SystemCallError, IOError, Net::OpenTimeout, Net::ReadTimeout
    nil
  end

  def port_open?(port)
    Socket.tcp("127.0.0.1", port, connect_timeout: 0.2).close
    true
  rescue SystemCallError, IOError
    false
  end

  def monotonic_now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
