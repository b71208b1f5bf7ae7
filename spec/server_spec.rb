# frozen_string_literal: true

require "rbconfig"
require "tempfile"
require "redisse/server"
require_relative "support/http_client"

RSpec.describe "Redisse.run" do
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
    let(:port) { TCPServer.open("127.0.0.1", 0) { |server| server.addr[1] } }
    let(:log) { Tempfile.new("redisse-server-log") }

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
        when "slow" then sleep 3
        when "env"
          # The env a Rack app expects, with the request's headers.
          ["\#{env['REQUEST_METHOD']} \#{env['PATH_INFO']} \#{env['HTTP_X_USER']}"]
        else
          ["\#{env['spec.tag']}:\#{env['QUERY_STRING']}"]
        end
      end
      exit Redisse.run(ARGV)
    RUBY

    before do
      lib = File.expand_path("../lib", __dir__)
      @pid = Process.spawn(RbConfig.ruby, "-I", lib, "-e", script, "--",
                           "--redis", REDIS_SERVER.url, "--port", port.to_s,
                           "--address", "127.0.0.1", "--stdout",
                           out: log.path, err: log.path)
      # Ready once it listens and its Redis connection is up (no more 503).
      wait_until("the server is ready on #{port}", timeout: 10) do
        probe = HttpClient.new(port)
        begin
          probe.get("/?probe", "Accept" => "text/event-stream").status == 200
        ensure
          probe.close
        end
      rescue SystemCallError
        raise "the server exited: #{File.read(log.path)}" if Process.wait(@pid, Process::WNOHANG)

        false
      end
    end

    after do
      if @pid
        Process.kill("KILL", @pid)
        Process.wait(@pid)
      end
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    ensure
      log.close!
    end

    def open_stream(path, headers = {})
      client = HttpClient.new(port)
      @clients = (@clients || []) << client
      [client, client.get(path, { "Accept" => "text/event-stream" }.merge(headers))]
    end

    after { @clients&.each(&:close) }

    def subscribed?(channel)
      redis.pubsub("numsub", channel).last.to_i.positive?
    end

    it "streams the events of the channels the block returned, through the middlewares" do
      client, response = open_stream("/?news")
      expect(response.status).to eq(200), File.read(log.path)
      expect(response.headers["content-type"]).to eq("text/event-stream")

      wait_until("the server subscribed") { subscribed?("tagged:news") }
      Redisse.publish("tagged:news", notice: "hello")

      expect(client.read_body_until("data: hello\n\n")).to end_with("id: 1\nevent: notice\ndata: hello\n\n")
    end

    it "gives the block a Rack env with the request's headers" do
      client, response = open_stream("/stream?env", "X-User" => "alice")
      expect(response.status).to eq(200)

      wait_until("the server subscribed") { subscribed?("GET /stream alice") }
      Redisse.publish("GET /stream alice", "hi")

      expect(client.read_body_until("data: hi\n")).to include("data: hi\n")
    end

    it "answers 500 and keeps serving when the block raises" do
      _client, response = open_stream("/?fail")

      expect(response.status).to eq(500)
      expect(File.read(log.path)).to include("ArgumentError", "no channels for you")
      _client, response = open_stream("/?ok")
      expect(response.status).to eq(200)
    end

    it "does not make other requests wait for a slow block" do
      open_stream("/?slow") # left waiting for its channels

      took = elapsed { expect(open_stream("/?quick").last.status).to eq(200) }

      expect(took).to be < 2
    end

    it "stops on SIGTERM and exits with status 0" do
      Process.kill("TERM", @pid)
      _, status = Process.wait2(@pid)
      @pid = nil

      expect(status.exitstatus).to eq(0), "#{status.inspect}\n#{File.read(log.path)}"
    end
  end
end
