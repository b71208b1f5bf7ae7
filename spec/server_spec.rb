# frozen_string_literal: true

require "rbconfig"
require "redisse/server"

RSpec.describe "Redisse.run" do
  # A server in a child process: `script`, run with the server's options.
  def server_script(script, **options)
    command = [RbConfig.ruby, "-I", File.expand_path("../lib", __dir__), "-e", script, "--"]
    ServerProcess.new(command: command, redis_url: REDIS_SERVER.url, heartbeat: nil, **options)
  end

  describe "its command line" do
    it "prints the help and returns 0 for --help" do
      status = nil

      expect { status = Redisse.run(["--help"]) }.to output(/--redis/).to_stdout
      expect(status).to eq(0)
    end

    it "prints the usage error and returns 2 for a bad option" do
      status = nil

      expect { status = Redisse.run(["--no-such-option"]) }.to output(/no-such-option/).to_stderr
      expect(status).to eq(2)
    end
  end

  # A server in a child process, running the Ruby `channels` block
  # (in-process mode) behind a middleware.
  describe "in-process mode" do
    let(:script) { <<~RUBY }
      require "redisse/server"

      class Tagger
        def initialize(app, tag:)
          @app = app
          @tag = tag
        end

        def call(env)
          env["spec.tag"] = @tag
          @app.call(env)
        end
      end

      Redisse.nginx_internal_url = nil
      Redisse.use Tagger, tag: "tagged"
      Redisse.channels do |env|
        case env["QUERY_STRING"]
        when "fail" then raise ArgumentError, "no channels for you"
        when "slow"
          $stdout.puts "the slow block runs"
          $stdout.flush
          sleep 3
        when "env"
          # The env a Rack app expects, with the request's headers.
          ["\#{env['REQUEST_METHOD']} \#{env['PATH_INFO']} \#{env['HTTP_X_USER']}"]
        else
          ["\#{env['spec.tag']}:\#{env['QUERY_STRING']}"]
        end
      end
      exit Redisse.run(ARGV)
    RUBY

    # Ready once it listens and its Redis connection is up.
    before { @server = server_script(script).start }

    after { @server&.stop }

    let(:server) { @server }

    def subscribed?(channel)
      redis.pubsub("numsub", channel).last.to_i.positive?
    end

    it "streams the events of the channels the block returned, through the middlewares" do
      reader = open_stream(server, "/?news")
      expect(reader.status).to eq(200), server.log
      expect(reader.headers["content-type"]).to eq("text/event-stream")

      wait_until("the server subscribed") { subscribed?("tagged:news") }
      Redisse.publish("tagged:news", notice: "hello")

      reader.wait_for_events(1)
      expect(reader.body_without_comments).to eq("id: 1\nevent: notice\ndata: hello\n\n")
    end

    it "gives the block a Rack env with the request's headers" do
      reader = open_stream(server, "/stream?env", { "X-User" => "alice" })
      expect(reader.status).to eq(200)

      wait_until("the server subscribed") { subscribed?("GET /stream alice") }
      Redisse.publish("GET /stream alice", "hi")

      expect(reader.wait_for_events(1).first.data).to eq("hi")
    end

    it "answers 500 and keeps serving when the block raises" do
      expect(open_stream(server, "/?fail").status).to eq(500)

      expect(server.log).to include("ArgumentError", "no channels for you")
      expect(open_stream(server, "/?ok").status).to eq(200)
    end

    it "does not make other requests wait for a slow block" do
      open_stream(server, "/?slow", head: false) # left waiting for its channels
      wait_until("the slow block runs") { server.log.include?("the slow block runs") }

      took = elapsed { expect(open_stream(server, "/?quick").status).to eq(200) }

      expect(took).to be < 2
    end

    it "stops on SIGTERM and exits with status 0" do
      status = server.terminate(timeout: 5)

      expect(status).not_to be_nil, "still running 5 s after SIGTERM; log:\n#{server.log}"
      expect(status.exitstatus).to eq(0), "#{status.inspect}\n#{server.log}"
    end
  end

  # As a configuration that the application and the server script both load.
  describe "with Redisse.secret set in Ruby" do
    let(:script) { <<~RUBY }
      require "redisse/server"
      Redisse.secret = "set in Ruby"
      exit Redisse.run(ARGV)
    RUBY

    before { @server = server_script(script, env: { "REDISSE_SECRET" => "from the environment" }).start }

    after { @server&.stop }

    it "requires tokens signed with that secret, whatever the environment says" do
      signed = open_stream(@server, new_redisse(secret: "set in Ruby").stream_url("/", "global"))
      expect(signed.status).to eq(200)

      refused = open_stream(@server, new_redisse(secret: "from the environment").stream_url("/", "global"))
      expect([refused.wait_until_finished.status, refused.body]).to eq([403, "403 Forbidden\nbad signature\n"])
    end
  end

  describe "with Redisse.secret set to nothing" do
    [nil, "", " \n"].each do |secret|
      it "stops before serving when it is #{secret.inspect}, and says so" do
        status = nil
        Redisse.secret = secret

        expect { status = Redisse.run(["--port", free_port.to_s]) }
          .to output(/Redisse\.secret is set to #{Regexp.escape(secret.inspect)}: the server would take streams without tokens/)
          .to_stderr
        expect(status).to eq(1)
      end
    end

    it "stops even where the environment has a secret" do
      script = "require 'redisse/server'; Redisse.secret = ENV['REDISSE_SECRET_TYPO']; exit Redisse.run(ARGV)"
      server = server_script(script, env: { "REDISSE_SECRET" => "from the environment" })
      expect { server.start }.to raise_error(/exited/)
      expect(server.log).to include("Redisse.secret is set to nil")
    end
  end
end
