# frozen_string_literal: true

require_relative "../lifeline_process"
require_relative "../free_port"
require_relative "../redis_server"
require_relative "../server_process"
require_relative "../rails_app"
require_relative "../sse_reader"
require_relative "deployment"

# The Rails example served by puma under its own bundle (RailsApp), with
# redis-server and the redisse server, on free ports of 127.0.0.1. With a
# secret and the server's URL, its pages connect to the server directly
# with signed URLs (`redisse_stream_from`), as the server allows their
# origin (--cors-origin).
class RailsDeployment
  START_TIMEOUT = 60 # seconds: bundle exec, then Rails boots

  attr_reader :redis, :redisse, :app_port

  def initialize(secret:)
    @rails_app = RailsApp.new
    @redis = RedisServerHarness.new
    @app_port = free_port
    @log_dir = Dir.mktmpdir("redisse-rails-deployment")
    secret_env = { "REDISSE_SECRET" => secret }
    @redisse = ServerProcess.new(kind: :gem, redis_url: redis.url, heartbeat: nil, env: secret_env,
                                 args: ["--cors-origin", app_url("")], log: File.join(@log_dir, "redisse.log"))
    app_env = @rails_app.env.merge(secret_env).merge(
      "REDISSE_REDIS" => redis.url, "REDISSE_SERVER_URL" => redisse.then { |server| "http://127.0.0.1:#{server.port}/" }
    )
    # Process.spawn adds to this process's environment: what the app's own
    # leaves out is unset.
    app_env = ENV.keys.to_h { |name| [name, nil] }.merge(app_env)
    @app = LifelineProcess.new(
      "rails (puma)",
      ["bundle", "exec", "puma", "--bind", "tcp://127.0.0.1:#{app_port}", "--environment", "development",
       "--threads", "1:8", "config.ru"],
      chdir: RailsApp::ROOT, env: app_env, log: File.join(@log_dir, "rails.log")
    )
  end

  include StartedWhole

  def start_parts
    @rails_app.install
    redis.start
    redisse.start
    @app.start.wait_until_ready("the Rails app answers on port #{app_port}", timeout: START_TIMEOUT) do
      SseReader.fetch(app_port, "/", { "Accept" => "application/json" })&.status == 200
    end
  end

  def app_url(path = "/")
    "http://127.0.0.1:#{app_port}#{path}"
  end

  def stop
    [@app, redisse].each(&:stop)
    redis.shutdown
  end

  def cleanup
    @rails_app.cleanup
    FileUtils.rm_rf(@log_dir)
  end

  def log_tails(lines = 30)
    [redisse, @app].map { |process| process.log_tail(lines) }.join
  end
end
