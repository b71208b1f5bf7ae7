# frozen_string_literal: true

require "json"
require "net/http"
require "socket"

RSpec.describe "bundle exec redisse" do
  # This app runs under its own bundle, as an application using the gem
  # would, and does not load the gem's spec/support: these two helpers are
  # its minimal copy of free_port and wait_until there.
  def free_port
    TCPServer.open("127.0.0.1", 0) { |server| server.addr[1] }
  end

  # Polls the block until it is truthy; fails after `timeout` seconds.
  def wait_until(what, timeout:)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until (result = yield)
      raise "timed out after #{timeout} s waiting until #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
    result
  end

  def stats(port)
    Net::HTTP.start("127.0.0.1", port, open_timeout: 0.5, read_timeout: 2) do |http|
      http.get("/", "Accept" => "application/json")
    end
  rescue SystemCallError, IOError, Net::OpenTimeout, Net::ReadTimeout
    nil
  end

  it "runs the server from the app's folder, and stops on SIGTERM" do
    port = free_port
    output, writer = IO.pipe
    app_root = File.expand_path("..", __dir__)
    pid = Process.spawn("bundle", "exec", "redisse", "--stdout", "--verbose", "--address", "127.0.0.1",
                        "--port", port.to_s, chdir: app_root, out: writer, err: writer)
    writer.close
    begin
      response = wait_until("redisse answers on port #{port}", timeout: 20) do
        if (status = Process.wait2(pid, Process::WNOHANG)&.last)
          pid = nil
          raise "redisse exited (#{status.inspect}): #{output.read}"
        end
        stats(port)
      end

      expect(response.code).to eq "200"
      expect(response["Content-Type"]).to eq "application/json"
      expect(JSON.parse(response.body).keys).to contain_exactly("connected", "events", "served", "missing")

      Process.kill("TERM", pid)
      status = wait_until("redisse exits after SIGTERM", timeout: 10) { Process.wait2(pid, Process::WNOHANG)&.last }
      pid = nil
      expect(status).to be_success
      expect(output.read).to include(port.to_s)
    ensure
      if pid
        Process.kill("KILL", pid)
        Process.wait(pid)
      end
      output.close
    end
  end
end
