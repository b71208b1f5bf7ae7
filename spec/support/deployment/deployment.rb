# frozen_string_literal: true

require "fileutils"
require "tmpdir"
require_relative "../lifeline_process"
require_relative "../free_port"
require_relative "../redis_server"
require_relative "../server_process"
require_relative "../sse_reader"

# Starts a deployment whole or not at all: should a part fail to start,
# what was started is stopped and the files removed, and the error (whose
# message holds the end of the logs) goes on. The class says how in
# `start_parts`.
module StartedWhole
  def start
    start_parts
    self
  rescue StandardError
    stop
    cleanup
    raise
  end
end

# The example deployment on free ports of 127.0.0.1: redis-server, the
# redisse server (the gem's executable), the example app (puma) and nginx in
# front of them, each a child process with its log in a temporary directory.
#
# With a secret, as bin/demo runs it: the server and the app share it
# (REDISSE_SECRET), streams are signed, and the pages the app serves itself
# (`app_url`) may connect to the server directly (--cors-origin).
class Deployment
  ROOT = File.expand_path("../../..", __dir__)
  EXAMPLE = File.join(ROOT, "example")
  START_TIMEOUT = 20 # seconds

  attr_reader :redis, :redisse, :dir, :redisse_port, :app_port, :nginx_port

  # @param secret [String, nil]
  # @param token_lifetime [Integer, nil] seconds a signed stream lasts (the
  #   app's TOKEN_LIFETIME); nil: the gem's default
  # @param server_args [Array<String>] more options of the redisse server
  #   (`--max-streams 1`...)
  def initialize(secret: nil, token_lifetime: nil, server_args: [])
    @dir = Dir.mktmpdir("redisse-deployment")
    # nginx's workers do not run as root: they must reach the temp paths.
    File.chmod(0o755, @dir)
    @redis = RedisServerHarness.new
    @redisse_port = free_port
    @app_port = free_port
    @nginx_port = free_port
    secret_env = secret ? { "REDISSE_SECRET" => secret } : {}
    # The server's default heartbeat, as in production.
    @redisse = ServerProcess.new(kind: :gem, redis_url: redis_url, port: redisse_port, heartbeat: nil,
                                 env: secret_env,
                                 args: (secret ? ["--cors-origin", app_url("")] : []) + server_args,
                                 log: log_path(:redisse))
    app_env = { "REDISSE_REDIS" => redis_url, "STREAM_SERVER_URL" => redisse_url,
                "TOKEN_LIFETIME" => token_lifetime&.to_s }.merge(secret_env)
    @app = LifelineProcess.new(
      "puma",
      ["puma", "--bind", "tcp://127.0.0.1:#{app_port}", "--environment", "production",
       "--threads", "1:8", File.join(EXAMPLE, "config.ru")],
      chdir: EXAMPLE, env: app_env, log: log_path(:app)
    )
    @nginx = LifelineProcess.new(
      "nginx",
      ["nginx", "-p", dir, "-c", nginx_config_path, "-g", "daemon off; pid #{dir}/nginx.pid; error_log stderr;"],
      chdir: dir, log: log_path(:nginx)
    )
  end

  include StartedWhole

  def start_parts
    redis.start
    start_redisse
    start_app
    start_nginx
  end

  # Stops everything; safe to call twice, and a no-op in forked children.
  def stop
    [@nginx, @app, @redisse].each(&:stop)
    redis.shutdown
  end

  # Removes the logs and Redis's folder.
  def cleanup
    FileUtils.rm_rf(dir)
    redis.shutdown
  end

  def redis_url
    redis.url
  end

  # A URL through nginx.
  def url(path = "/")
    "http://127.0.0.1:#{nginx_port}#{path}"
  end

  # A URL of the app itself, without nginx.
  def app_url(path = "/")
    "http://127.0.0.1:#{app_port}#{path}"
  end

  # The redisse server's own URL.
  def redisse_url(path = "/")
    "http://127.0.0.1:#{redisse_port}#{path}"
  end

  # A stream through nginx, as a browser's EventSource opens it.
  # @return [SseReader]
  def open_stream(path, headers = {}, **options)
    SseReader.new(nginx_port, path, headers, **options)
  end

  # --- the redisse server ---------------------------------------------------

  def start_redisse
    @redisse.start
  end

  # Stops it (SIGTERM: the streams end cleanly); its port is free once this returns.
  def stop_redisse
    @redisse.stop
  end

  # --- the app and nginx ------------------------------------------------------

  def start_app
    @app.start.wait_until_ready("puma answers on port #{app_port}", timeout: START_TIMEOUT) do
      answers?(app_port, "/subscriptions")
    end
  end

  def start_nginx
    File.write(nginx_config_path, nginx_config)
    @nginx.start.wait_until_ready("nginx answers on port #{nginx_port}", timeout: START_TIMEOUT) do
      answers?(nginx_port, "/subscriptions")
    end
  end

  def nginx_config_path
    File.join(dir, "nginx.conf")
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
    [@redisse, @app, @nginx].map { |process| process.log_tail(lines) }.join
  end

  private

  def answers?(port, path)
    SseReader.fetch(port, path, { "Accept" => "*/*" })&.status == 200
  end
end
