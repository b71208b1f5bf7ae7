# frozen_string_literal: true

require "rbconfig"
require "rack"
require "rack/session/cookie"

# In-process mode behind the middlewares an application puts in front of
# its `channels` block: a cookie session (Rack 2.2's own, or the
# rack-session gem's on Rack 3), a Warden-like one that finds the user in
# the session, and Rack::Lint in front of both, which fails the request if
# the env the server builds is not one the running Rack accepts.
RSpec.describe "In-process mode behind an application's Rack middlewares" do
  # rack-session's Cookie wants a secret of 64 bytes or more.
  secret = "an application's session secret " * 3
  session_options = { key: "app.session", secret: secret }

  let(:script) { <<~RUBY }
    require "redisse/server"
    require "rack"
    require "rack/lint"
    require "rack/session/cookie"

    # What Warden::Manager does for the block: env["warden"], whose #user
    # comes from the session.
    class WardenLike
      Proxy = Struct.new(:env) do
        def user
          id = env["rack.session"]["user_id"]
          id && "user:\#{id}"
        end
      end

      def initialize(app)
        @app = app
      end

      def call(env)
        env["warden"] = Proxy.new(env)
        @app.call(env)
      end
    end

    Redisse.nginx_internal_url = nil
    Redisse.use Rack::Lint
    Redisse.use Rack::Session::Cookie, #{session_options.inspect}
    Redisse.use WardenLike
    Redisse.channels { |env| ["global", env["warden"].user].compact }
    $stdout.puts "Rack \#{Rack.release}"
    $stdout.flush
    exit Redisse.run(ARGV)
  RUBY

  before do
    command = [RbConfig.ruby, "-I", File.expand_path("../lib", __dir__), "-e", script, "--"]
    @server = ServerProcess.new(command: command, redis_url: REDIS_SERVER.url, heartbeat: nil).start
  end

  after { @server&.stop }

  # The Cookie header of a session whose user_id is `user_id`, as the
  # application would have set it.
  def session_cookie(user_id, options)
    app = lambda do |env|
      env["rack.session"]["user_id"] = user_id
      [200, {}, []]
    end
    _status, headers, _body = Rack::Session::Cookie.new(app, options.dup).call(Rack::MockRequest.env_for("/"))
    set_cookie = headers.find { |name, _| name.casecmp?("set-cookie") }&.last
    Array(set_cookie).join("\n").split("\n").first.split(";").first
  end

  def subscribed?(channel)
    redis.pubsub("numsub", channel).last.to_i.positive?
  end

  it "gives the block the session's user, through the Warden-like middleware, in an env Rack::Lint accepts" do
    stream = open_stream(@server, "/events", { "Cookie" => session_cookie(42, session_options) })
    expect(stream.status).to eq(200), @server.log
    expect(@server.log).to include("Rack #{Rack.release}")

    wait_until("the server subscribed to the user's channel") { subscribed?("user:42") && subscribed?("global") }
    Redisse.publish("user:42", notice: "for 42")
    Redisse.publish("global", "for all")

    events = stream.wait_for_events(2)
    expect(events.map { |event| [event.type, event.data] }).to eq([%w[notice for\ 42], ["message", "for all"]])
    expect(@server.log).not_to include("LintError")
  end

  it "gives a request without a session the global channel alone" do
    stream = open_stream(@server, "/events")
    expect(stream.status).to eq(200), @server.log

    wait_until("the server subscribed to the global channel") { subscribed?("global") }
    Redisse.publish("user:42", "not for this one")
    Redisse.publish("global", "for all")

    expect(stream.wait_for_events(1).map(&:data)).to eq(["for all"])
    expect(redis.pubsub("numsub", "user:42").last.to_i).to eq 0
  end

  it "refuses a session cookie signed with another secret, as the application would" do
    forged = session_cookie(7, session_options.merge(secret: secret.reverse))
    stream = open_stream(@server, "/events", { "Cookie" => forged })
    expect(stream.status).to eq(200), @server.log

    wait_until("the server subscribed to the global channel") { subscribed?("global") }
    Redisse.publish("global", "for all")

    expect(stream.wait_for_events(1).map(&:data)).to eq(["for all"])
    expect(redis.pubsub("numsub", "user:7").last.to_i).to eq 0
  end
end
